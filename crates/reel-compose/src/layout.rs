//! Layouts as geometry over time, sans-IO: from who is in the session when (cameras, screen
//! shares, audio-only participants), who speaks, and which layout is asked for, the list of
//! scenes (from a time on, these tiles at these places) that the renderer draws.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Rect {
    pub x: i32,
    pub y: i32,
    pub width: i32,
    pub height: i32,
}

impl Rect {
    pub fn new(x: i32, y: i32, width: i32, height: i32) -> Rect {
        Rect {
            x,
            y,
            width,
            height,
        }
    }

    /// The largest rectangle of aspect `w:h` centred in this one (letterbox or pillarbox).
    pub fn fit(self, w: u32, h: u32) -> Rect {
        if w == 0 || h == 0 {
            return self;
        }
        let (w, h) = (w as i64, h as i64);
        let (cw, ch) = (self.width as i64, self.height as i64);
        let (fw, fh) = if cw * h > ch * w {
            (ch * w / h, ch)
        } else {
            (cw, cw * h / w)
        };
        // Even sizes: encoders with 4:2:0 chroma want them.
        let (fw, fh) = ((fw & !1) as i32, (fh & !1) as i32);
        Rect::new(
            self.x + (self.width - fw) / 2,
            self.y + (self.height - fh) / 2,
            fw,
            fh,
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SourceKind {
    Camera,
    Screen,
    /// A participant with audio only: a tile with their name.
    AudioOnly,
}

/// One picture source over its lifetime in the output timeline.
#[derive(Debug, Clone, PartialEq)]
pub struct Source {
    pub id: String,
    pub participant: String,
    pub kind: SourceKind,
    pub from_ms: i64,
    pub to_ms: i64,
    /// Picture aspect (width, height); audio-only tiles use the cell's.
    pub aspect: (u32, u32),
}

/// A region of a custom layout, in the spirit of Twilio's composition layouts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Region {
    pub x: i32,
    pub y: i32,
    pub width: i32,
    pub height: i32,
    #[serde(default)]
    pub z: i32,
    /// Which kinds fill it; empty: all.
    #[serde(default)]
    pub kinds: Vec<SourceKind>,
    /// Which participants fill it; empty: all.
    #[serde(default)]
    pub participants: Vec<String>,
    #[serde(default = "one")]
    pub max_tiles: usize,
    /// When more sources match than `max_tiles`: show the oldest or the newest.
    #[serde(default)]
    pub reuse: Reuse,
}

fn one() -> usize {
    1
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Reuse {
    #[default]
    ShowOldest,
    ShowNewest,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Layout {
    /// Every camera (and audio-only participant) in a grid that re-flows; at most 16 tiles,
    /// then the most recent speakers.
    Grid,
    /// The current speaker full frame, optionally a strip of the others at the bottom.
    ActiveSpeaker {
        #[serde(default)]
        thumbnails: bool,
    },
    /// A screen share large, the cameras in a strip at the side; a grid while nobody shares.
    Presentation,
    Custom {
        regions: Vec<Region>,
    },
}

impl Layout {
    pub fn validate(&self, width: i32, height: i32) -> Result<(), String> {
        if let Layout::Custom { regions } = self {
            if regions.is_empty() || regions.len() > 32 {
                return Err("custom layouts have 1 to 32 regions".into());
            }
            for (i, r) in regions.iter().enumerate() {
                let inside = r.x >= 0
                    && r.y >= 0
                    && r.width >= 16
                    && r.height >= 16
                    && r.x + r.width <= width
                    && r.y + r.height <= height;
                if !inside {
                    return Err(format!(
                        "regions[{i}] is not inside the {width}x{height} canvas"
                    ));
                }
                if !(1..=16).contains(&r.max_tiles) {
                    return Err(format!("regions[{i}].max_tiles: 1 to 16"));
                }
            }
        }
        Ok(())
    }
}

/// One source drawn at one place.
#[derive(Debug, Clone, PartialEq)]
pub struct Tile {
    pub source: String,
    pub rect: Rect,
    pub z: i32,
}

/// From `from_ms` on (until the next scene), these tiles.
#[derive(Debug, Clone, PartialEq)]
pub struct Scene {
    pub from_ms: i64,
    pub tiles: Vec<Tile>,
}

pub const MAX_GRID_TILES: usize = 16;

/// `n` cells of a grid over `area`: columns = ⌈√n⌉, rows as needed, the last row centred.
pub fn grid_cells(area: Rect, n: usize) -> Vec<Rect> {
    if n == 0 {
        return Vec::new();
    }
    let cols = (n as f64).sqrt().ceil() as usize;
    let rows = n.div_ceil(cols);
    let (cw, ch) = (area.width / cols as i32, area.height / rows as i32);
    (0..n)
        .map(|i| {
            let (row, col) = (i / cols, i % cols);
            let in_row = if row == rows - 1 {
                n - row * cols
            } else {
                cols
            };
            let offset = (cols - in_row) as i32 * cw / 2;
            Rect::new(
                area.x + offset + col as i32 * cw,
                area.y + row as i32 * ch,
                cw,
                ch,
            )
        })
        .collect()
}

/// What the renderer knows at one instant.
pub struct Moment<'a> {
    pub canvas: Rect,
    /// Live sources, in the order they joined.
    pub live: Vec<&'a Source>,
    pub speaker: Option<&'a str>,
    /// Participants by how recently they last were the speaker, most recent first.
    pub recent_speakers: &'a [String],
}

fn tile(s: &Source, cell: Rect, z: i32) -> Tile {
    let rect = match s.kind {
        SourceKind::AudioOnly => cell,
        _ => cell.fit(s.aspect.0, s.aspect.1),
    };
    Tile {
        source: s.id.clone(),
        rect,
        z,
    }
}

fn people<'a>(m: &Moment<'a>) -> Vec<&'a Source> {
    m.live
        .iter()
        .copied()
        .filter(|s| s.kind != SourceKind::Screen)
        .collect()
}

/// At most `max` of `sources`, preferring recent speakers, then join order; joined order kept.
fn most_relevant<'a>(sources: Vec<&'a Source>, max: usize, recent: &[String]) -> Vec<&'a Source> {
    if sources.len() <= max {
        return sources;
    }
    let rank = |s: &Source| {
        recent
            .iter()
            .position(|p| *p == s.participant)
            .unwrap_or(usize::MAX)
    };
    let mut keep: Vec<(usize, &Source)> = sources.into_iter().enumerate().collect();
    keep.sort_by_key(|(i, s)| (rank(s), *i));
    keep.truncate(max);
    keep.sort_by_key(|(i, _)| *i);
    keep.into_iter().map(|(_, s)| s).collect()
}

fn grid_tiles(m: &Moment, area: Rect, sources: Vec<&Source>, z: i32) -> Vec<Tile> {
    let shown = most_relevant(sources, MAX_GRID_TILES, m.recent_speakers);
    grid_cells(area, shown.len())
        .into_iter()
        .zip(shown)
        .map(|(cell, s)| tile(s, cell, z))
        .collect()
}

/// The tiles of `layout` at one moment.
pub fn tiles(layout: &Layout, m: &Moment) -> Vec<Tile> {
    let c = m.canvas;
    match layout {
        Layout::Grid => grid_tiles(m, c, people(m), 0),
        Layout::ActiveSpeaker { thumbnails } => {
            let everyone = people(m);
            let main = m
                .speaker
                .and_then(|p| {
                    everyone
                        .iter()
                        .find(|s| s.participant == p && s.kind == SourceKind::Camera)
                })
                .or_else(|| everyone.first())
                .copied();
            let Some(main) = main else {
                return Vec::new();
            };
            let mut out = vec![tile(main, c, 0)];
            if *thumbnails {
                let others: Vec<&Source> =
                    everyone.into_iter().filter(|s| s.id != main.id).collect();
                let others = most_relevant(others, 6, m.recent_speakers);
                let h = c.height / 6;
                let w = h * 16 / 9;
                let total = w * others.len() as i32;
                let x0 = c.x + (c.width - total) / 2;
                for (i, s) in others.into_iter().enumerate() {
                    // Flush with the bottom: no band of the speaker's picture under it.
                    let cell = Rect::new(x0 + i as i32 * w, c.y + c.height - h, w, h);
                    out.push(tile(s, cell, 1));
                }
            }
            out
        }
        Layout::Presentation => {
            let screen = m.live.iter().rev().find(|s| s.kind == SourceKind::Screen);
            let Some(screen) = screen else {
                return grid_tiles(m, c, people(m), 0);
            };
            let strip_w = c.width / 5;
            let main = Rect::new(c.x, c.y, c.width - strip_w, c.height);
            let mut out = vec![tile(screen, main, 0)];
            let cams = most_relevant(people(m), 5, m.recent_speakers);
            let n = cams.len().max(4) as i32;
            let h = c.height / n;
            // Fewer than four cameras: the strip is centred beside the screen, not hung from
            // the top over an empty band.
            let y0 = c.y + (c.height - h * cams.len() as i32) / 2;
            for (i, s) in cams.into_iter().enumerate() {
                let cell = Rect::new(c.x + c.width - strip_w, y0 + i as i32 * h, strip_w, h);
                out.push(tile(s, cell, 1));
            }
            out
        }
        Layout::Custom { regions } => {
            let mut used = std::collections::HashSet::new();
            let mut out = Vec::new();
            for r in regions {
                let matching: Vec<&Source> = m
                    .live
                    .iter()
                    .copied()
                    .filter(|s| !used.contains(&s.id))
                    .filter(|s| r.kinds.is_empty() || r.kinds.contains(&s.kind))
                    .filter(|s| {
                        r.participants.is_empty() || r.participants.contains(&s.participant)
                    })
                    .collect();
                let chosen: Vec<&Source> = match r.reuse {
                    Reuse::ShowOldest => matching.into_iter().take(r.max_tiles).collect(),
                    Reuse::ShowNewest => {
                        let skip = matching.len().saturating_sub(r.max_tiles);
                        matching.into_iter().skip(skip).collect()
                    }
                };
                let area = Rect::new(r.x, r.y, r.width, r.height);
                for (cell, s) in grid_cells(area, chosen.len()).into_iter().zip(chosen) {
                    used.insert(s.id.clone());
                    out.push(tile(s, cell, r.z));
                }
            }
            out.sort_by_key(|t| t.z);
            out
        }
    }
}

/// Scenes over the whole output: a new one wherever a source comes or goes, the speaker
/// changes, or the layout changes (`layouts`: from that time on, that layout; the first at 0).
pub fn scenes(
    canvas: Rect,
    sources: &[Source],
    speakers: &[(i64, String)],
    layouts: &[(i64, Layout)],
) -> Vec<Scene> {
    let mut times: Vec<i64> = vec![0];
    times.extend(sources.iter().flat_map(|s| [s.from_ms, s.to_ms]));
    times.extend(speakers.iter().map(|(t, _)| *t));
    times.extend(layouts.iter().map(|(t, _)| *t));
    times.retain(|t| *t >= 0);
    times.sort_unstable();
    times.dedup();
    let mut out: Vec<Scene> = Vec::new();
    let mut recent: Vec<String> = Vec::new();
    for t in times {
        let layout = layouts
            .iter()
            .rev()
            .find(|(from, _)| *from <= t)
            .or(layouts.first())
            .map(|(_, l)| l.clone())
            .unwrap_or(Layout::Grid);
        let mut live: Vec<&Source> = sources
            .iter()
            .filter(|s| s.from_ms <= t && t < s.to_ms)
            .collect();
        live.sort_by_key(|s| s.from_ms);
        for (_, who) in speakers.iter().filter(|(at, _)| *at <= t) {
            recent.retain(|p| p != who);
            recent.insert(0, who.clone());
        }
        let speaker = speakers
            .iter()
            .rev()
            .find(|(at, _)| *at <= t)
            .map(|(_, p)| p.as_str());
        let moment = Moment {
            canvas,
            live,
            speaker,
            recent_speakers: &recent,
        };
        let tiles = tiles(&layout, &moment);
        if out.last().is_none_or(|s| s.tiles != tiles) {
            out.push(Scene { from_ms: t, tiles });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const HD: Rect = Rect {
        x: 0,
        y: 0,
        width: 1280,
        height: 720,
    };

    fn cam(id: &str, from: i64, to: i64) -> Source {
        Source {
            id: id.into(),
            participant: id.into(),
            kind: SourceKind::Camera,
            from_ms: from,
            to_ms: to,
            aspect: (16, 9),
        }
    }

    #[test]
    fn grid_reflows_as_people_join_and_leave() {
        let sources = [
            cam("a", 0, 10_000),
            cam("b", 2_000, 10_000),
            cam("c", 4_000, 6_000),
        ];
        let s = scenes(HD, &sources, &[], &[(0, Layout::Grid)]);
        let at: Vec<(i64, usize)> = s.iter().map(|s| (s.from_ms, s.tiles.len())).collect();
        assert_eq!(
            at,
            vec![(0, 1), (2_000, 2), (4_000, 3), (6_000, 2), (10_000, 0)]
        );
        // One person: the whole canvas. Two: side by side, 16:9 kept (letterboxed).
        assert_eq!(s[0].tiles[0].rect, HD);
        assert_eq!(s[1].tiles[0].rect, Rect::new(0, 180, 640, 360));
        assert_eq!(s[1].tiles[1].rect, Rect::new(640, 180, 640, 360));
        // Three: two on top, one centred below.
        assert_eq!(s[2].tiles[2].rect, Rect::new(320, 360, 640, 360));
    }

    #[test]
    fn grid_keeps_the_most_recent_speakers_past_sixteen() {
        let sources: Vec<Source> = (0..20).map(|i| cam(&format!("p{i}"), i, 100_000)).collect();
        let speakers = vec![(50, "p19".to_string())];
        let s = scenes(HD, &sources, &speakers, &[(0, Layout::Grid)]);
        let last = s.iter().rev().find(|s| s.from_ms <= 1_000).unwrap();
        assert_eq!(last.from_ms, 50);
        assert_eq!(last.tiles.len(), 16);
        assert!(last.tiles.iter().any(|t| t.source == "p19"));
        assert!(!last.tiles.iter().any(|t| t.source == "p15"));
    }

    #[test]
    fn presentation_switches_on_the_screen_share() {
        let mut screen = cam("a-screen", 3_000, 8_000);
        screen.kind = SourceKind::Screen;
        screen.participant = "a".into();
        let sources = [cam("a", 0, 10_000), cam("b", 0, 10_000), screen];
        let s = scenes(HD, &sources, &[], &[(0, Layout::Presentation)]);
        let starts: Vec<i64> = s.iter().map(|s| s.from_ms).collect();
        assert_eq!(starts, vec![0, 3_000, 8_000, 10_000]);
        let shared = &s[1].tiles;
        assert_eq!(shared[0].source, "a-screen");
        assert_eq!(shared[0].rect.x, 0);
        assert!(shared[0].rect.width > 900);
        assert!(shared[1..].iter().all(|t| t.rect.x >= 1024));
        assert_eq!(s[2].tiles.len(), 2, "back to the grid");
    }

    #[test]
    fn active_speaker_fills_the_frame_with_thumbnails_of_the_others() {
        let sources = [cam("a", 0, 10_000), cam("b", 0, 10_000)];
        let speakers = vec![(0, "a".to_string()), (4_000, "b".to_string())];
        let s = scenes(
            HD,
            &sources,
            &speakers,
            &[(0, Layout::ActiveSpeaker { thumbnails: true })],
        );
        assert_eq!(s[0].tiles[0].source, "a");
        assert_eq!(s[0].tiles[0].rect, HD);
        assert_eq!(s[0].tiles[1].source, "b");
        assert!(s[0].tiles[1].rect.height < 200);
        assert_eq!(s[1].from_ms, 4_000);
        assert_eq!(s[1].tiles[0].source, "b");
    }

    #[test]
    fn custom_regions_and_a_layout_change_midway() {
        let custom: Layout = serde_json::from_value(serde_json::json!({
            "type": "custom",
            "regions": [
                {"x": 0, "y": 0, "width": 640, "height": 720, "participants": ["b"]},
                {"x": 640, "y": 0, "width": 640, "height": 720, "max_tiles": 4, "z": 1}
            ]
        }))
        .unwrap();
        custom.validate(1280, 720).unwrap();
        let sources = [
            cam("a", 0, 10_000),
            cam("b", 0, 10_000),
            cam("c", 0, 10_000),
        ];
        let s = scenes(HD, &sources, &[], &[(0, Layout::Grid), (5_000, custom)]);
        assert_eq!(s[1].from_ms, 5_000);
        let b = s[1].tiles.iter().find(|t| t.source == "b").unwrap();
        assert_eq!(b.rect.x, 0);
        let a = s[1].tiles.iter().find(|t| t.source == "a").unwrap();
        assert!(a.rect.x >= 640 && a.z == 1);
        let bad = Layout::Custom {
            regions: vec![Region {
                x: 1200,
                y: 0,
                width: 200,
                height: 100,
                z: 0,
                kinds: vec![],
                participants: vec![],
                max_tiles: 1,
                reuse: Reuse::ShowOldest,
            }],
        };
        assert!(bad.validate(1280, 720).is_err());
    }
}
