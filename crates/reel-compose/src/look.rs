//! What is drawn over the composited picture, sized from the output, so that it reads the
//! same at 360p as at 1080p: one label style for every tile (bottom-left of the tile, raised
//! above any tile drawn over that corner), and the REC badge in a band of its own at the top
//! that no tile of a built-in layout enters.

use crate::layout::{Rect, Tile};

/// Sizes in output pixels for one output height.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Look {
    /// Font size of labels and the badge (Pango `px`): 4 % of the height, the glyphs of a
    /// name then stand about 3.5 % tall (the floor for reading is 2.5 %).
    pub text_px: i32,
    /// Space between text and the edge of what it sits on.
    pub margin: i32,
}

impl Look {
    pub fn for_height(height: i32) -> Look {
        Look {
            text_px: ((height as f64 * 0.04).round() as i32).max(12),
            margin: ((height as f64 * 0.015).round() as i32).max(4),
        }
    }

    /// The Pango font of labels and the badge.
    pub fn font(&self) -> String {
        format!("Sans Bold {}px", self.text_px)
    }

    /// Height of the band at the top the REC badge is drawn in: the text's line (about
    /// 1.4 × its size) and a margin above and below.
    pub fn badge_band(&self) -> i32 {
        self.text_px * 3 / 2 + 2 * self.margin
    }

    /// Where the built-in layouts place tiles: the whole output, less the badge's band.
    pub fn layout_canvas(&self, width: i32, height: i32, badge: bool) -> Rect {
        let band = if badge { self.badge_band() } else { 0 };
        Rect::new(0, band, width, height - band)
    }

    /// The label of `tiles[i]`: its left edge and the bottom of its text, in output pixels.
    /// At the tile's bottom-left corner, unless a tile drawn over it covers that corner (an
    /// active speaker under the thumbnail strip): then just above the covering tiles.
    pub fn label_anchor(&self, tiles: &[Tile], i: usize) -> (i32, i32) {
        let t = &tiles[i];
        let x = t.rect.x + self.margin;
        let mut bottom = t.rect.y + t.rect.height - self.margin;
        // The label's box: from x, as wide as half the tile, one text line tall.
        let (left, right) = (x, x + t.rect.width / 2);
        loop {
            let top = bottom - self.text_px * 3 / 2;
            let over = tiles.iter().enumerate().find(|(j, o)| {
                *j != i
                    && o.z > t.z
                    && o.rect.x < right
                    && o.rect.x + o.rect.width > left
                    && o.rect.y < bottom
                    && o.rect.y + o.rect.height > top
            });
            match over {
                Some((_, o)) if o.rect.y - self.margin < bottom => bottom = o.rect.y - self.margin,
                _ => return (x, bottom),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tile(x: i32, y: i32, w: i32, h: i32, z: i32) -> Tile {
        Tile {
            source: format!("{x},{y}"),
            rect: Rect::new(x, y, w, h),
            z,
        }
    }

    #[test]
    fn sizes_follow_the_output_height() {
        assert_eq!(
            Look::for_height(360),
            Look {
                text_px: 14,
                margin: 5
            }
        );
        assert_eq!(
            Look::for_height(720),
            Look {
                text_px: 29,
                margin: 11
            }
        );
        assert_eq!(
            Look::for_height(1080),
            Look {
                text_px: 43,
                margin: 16
            }
        );
        let look = Look::for_height(720);
        assert_eq!(
            look.layout_canvas(1280, 720, true),
            Rect::new(0, 65, 1280, 655)
        );
        assert_eq!(
            look.layout_canvas(1280, 720, false),
            Rect::new(0, 0, 1280, 720)
        );
    }

    #[test]
    fn a_label_rises_above_the_tiles_drawn_over_its_corner() {
        let look = Look::for_height(720);
        // A full-frame speaker and a thumbnail strip over its bottom.
        let tiles = [tile(0, 0, 1280, 720, 0), tile(0, 600, 213, 120, 1)];
        assert_eq!(look.label_anchor(&tiles, 0), (11, 600 - 11));
        // The thumbnail's own label stays in its corner.
        assert_eq!(look.label_anchor(&tiles, 1), (11, 720 - 11));
        // Side by side: nobody moves.
        let grid = [tile(0, 0, 640, 720, 0), tile(640, 0, 640, 720, 0)];
        assert_eq!(look.label_anchor(&grid, 0), (11, 709));
    }
}
