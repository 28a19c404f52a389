//! Who is speaking, from audio levels, with hysteresis: the active speaker changes only after
//! another participant has been the loudest for `min_dominance` without interruption, so a
//! cough or a short "mm-hm" does not flip the picture.
//!
//! Sans-IO: levels in (one value per participant per step, in dBFS), speaker changes out.

/// Levels below this are silence: nobody takes the floor by being the least quiet.
pub const SILENCE_DBFS: f32 = -50.0;

#[derive(Debug, Clone, PartialEq)]
pub struct SpeakerChange {
    pub at_ms: i64,
    /// Index into the participants the levels were given for.
    pub speaker: usize,
}

/// Speaker changes over `levels[step][participant]` taken every `step_ms`, starting at 0.
/// The first speaker is whoever is loudest first (no wait for the first one).
pub fn speaker_changes(
    levels: &[Vec<f32>],
    step_ms: i64,
    min_dominance_ms: i64,
) -> Vec<SpeakerChange> {
    let mut changes: Vec<SpeakerChange> = Vec::new();
    // The candidate who has been loudest since `since` steps ago.
    let mut candidate: Option<(usize, usize)> = None;
    for (step, row) in levels.iter().enumerate() {
        let loudest = row
            .iter()
            .enumerate()
            .filter(|(_, l)| **l > SILENCE_DBFS)
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map(|(i, _)| i);
        let current = changes.last().map(|c| c.speaker);
        let Some(loudest) = loudest else {
            candidate = None;
            continue;
        };
        if current.is_none() {
            changes.push(SpeakerChange {
                at_ms: step as i64 * step_ms,
                speaker: loudest,
            });
            candidate = None;
            continue;
        }
        if Some(loudest) == current {
            candidate = None;
            continue;
        }
        let since = match candidate {
            Some((who, since)) if who == loudest => since,
            _ => {
                candidate = Some((loudest, step));
                step
            }
        };
        if (step + 1 - since) as i64 * step_ms >= min_dominance_ms {
            // The switch takes effect when the dominance began: the picture follows the
            // voice, not the decision.
            changes.push(SpeakerChange {
                at_ms: since as i64 * step_ms,
                speaker: loudest,
            });
            candidate = None;
        }
    }
    changes
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `spans` of (participant, steps) with that participant at -20 dBFS, others at -30.
    fn levels(n: usize, spans: &[(usize, usize)]) -> Vec<Vec<f32>> {
        spans
            .iter()
            .flat_map(|&(who, steps)| {
                (0..steps).map(move |_| {
                    (0..n)
                        .map(|i| if i == who { -20.0 } else { -30.0 })
                        .collect()
                })
            })
            .collect()
    }

    #[test]
    fn a_switch_needs_one_and_a_half_seconds_of_dominance() {
        // 100 ms steps: A 3 s, B 1 s (too short), A 2 s, B 2 s.
        let l = levels(2, &[(0, 30), (1, 10), (0, 20), (1, 20)]);
        let c = speaker_changes(&l, 100, 1500);
        assert_eq!(
            c,
            vec![
                SpeakerChange {
                    at_ms: 0,
                    speaker: 0
                },
                SpeakerChange {
                    at_ms: 6000,
                    speaker: 1
                },
            ]
        );
    }

    #[test]
    fn silence_takes_nobody_and_interrupts_a_candidate() {
        let mut l = vec![vec![-90.0, -90.0]; 5];
        l.extend(levels(2, &[(1, 10)]));
        l.extend(vec![vec![-90.0, -90.0]; 3]);
        l.extend(levels(2, &[(0, 10), (0, 10)]));
        let c = speaker_changes(&l, 100, 1500);
        assert_eq!(
            c[0],
            SpeakerChange {
                at_ms: 500,
                speaker: 1
            }
        );
        assert_eq!(
            c[1],
            SpeakerChange {
                at_ms: 1800,
                speaker: 0
            }
        );
        assert_eq!(c.len(), 2);
    }
}
