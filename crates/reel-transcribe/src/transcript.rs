//! The transcript: every speaker's segments merged by time. Written as the seed's JSON
//! (`{"text", "lines": [{"timestamp", "speakerLabel", "text"}]}`) and as WebVTT with voice
//! spans (`<v Name>`), so players show who is speaking.

use crate::Segment;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Line {
    /// Seconds from the start of the recording (ms precision).
    pub timestamp: f64,
    #[serde(rename = "speakerLabel")]
    pub speaker_label: String,
    pub text: String,
    /// When the line ends; the WebVTT cue needs it, the seed's JSON has no place for it.
    #[serde(skip)]
    pub end: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Transcript {
    pub text: String,
    pub lines: Vec<Line>,
}

fn ms(seconds: f64) -> f64 {
    (seconds * 1000.0).round() / 1000.0
}

impl Transcript {
    /// Merges each speaker's segments into one list in time order (a tie keeps the
    /// speakers' order). Empty segments are dropped.
    pub fn merge(speakers: Vec<(String, Vec<Segment>)>) -> Transcript {
        let mut lines: Vec<Line> = speakers
            .into_iter()
            .flat_map(|(label, segments)| {
                segments.into_iter().filter_map(move |s| {
                    let text = s.text.split_whitespace().collect::<Vec<_>>().join(" ");
                    (!text.is_empty()).then(|| Line {
                        timestamp: ms(s.start_s),
                        speaker_label: label.clone(),
                        text,
                        end: ms(s.end_s.max(s.start_s)),
                    })
                })
            })
            .collect();
        lines.sort_by(|a, b| a.timestamp.total_cmp(&b.timestamp));
        let text = lines
            .iter()
            .map(|l| l.text.as_str())
            .collect::<Vec<_>>()
            .join(" ");
        Transcript { text, lines }
    }

    /// WebVTT (W3C): one cue per line, the speaker as a voice span. A cue ends where its
    /// line ends, or at least 0.5 s after it starts.
    pub fn webvtt(&self) -> String {
        let mut out = String::from("WEBVTT\n\n");
        for (i, l) in self.lines.iter().enumerate() {
            let end = l.end.max(l.timestamp + 0.5);
            out.push_str(&format!(
                "{}\n{} --> {}\n<v {}>{}\n\n",
                i + 1,
                vtt_time(l.timestamp),
                vtt_time(end),
                escape(&l.speaker_label),
                escape(&l.text)
            ));
        }
        out
    }
}

fn vtt_time(seconds: f64) -> String {
    let total_ms = (seconds.max(0.0) * 1000.0).round() as u64;
    let (h, rest) = (total_ms / 3_600_000, total_ms % 3_600_000);
    format!(
        "{h:02}:{:02}:{:02}.{:03}",
        rest / 60_000,
        rest / 1000 % 60,
        rest % 1000
    )
}

/// Cue text may not hold `<`, `&`, or a line break, and `-->` nowhere.
fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace(['\n', '\r'], " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(start_s: f64, end_s: f64, text: &str) -> Segment {
        Segment {
            start_s,
            end_s,
            text: text.into(),
        }
    }

    #[test]
    fn lines_of_both_speakers_interleave_by_time() {
        let t = Transcript::merge(vec![
            (
                "Alice".into(),
                vec![seg(0.5, 2.0, "one two"), seg(6.0, 7.0, "five")],
            ),
            (
                "Bob".into(),
                vec![seg(3.25, 4.0, " three  four "), seg(9.0, 9.0, " ")],
            ),
        ]);
        let who: Vec<(&str, f64)> = t
            .lines
            .iter()
            .map(|l| (l.speaker_label.as_str(), l.timestamp))
            .collect();
        assert_eq!(who, [("Alice", 0.5), ("Bob", 3.25), ("Alice", 6.0)]);
        assert_eq!(t.text, "one two three four five");
        let json = serde_json::to_value(&t).unwrap();
        assert_eq!(
            json["lines"][1],
            serde_json::json!({"timestamp": 3.25, "speakerLabel": "Bob", "text": "three four"})
        );
    }

    #[test]
    fn webvtt_has_timed_cues_with_escaped_voices() {
        let t = Transcript::merge(vec![(
            "A <B> & C".into(),
            vec![seg(3661.5, 3661.6, "x --> y"), seg(1.0, 2.25, "hi")],
        )]);
        assert_eq!(
            t.webvtt(),
            "WEBVTT\n\n1\n00:00:01.000 --> 00:00:02.250\n<v A &lt;B&gt; &amp; C>hi\n\n\
             2\n01:01:01.500 --> 01:01:02.000\n<v A &lt;B&gt; &amp; C>x --&gt; y\n\n"
        );
    }
}

/// Word error rate of `hypothesis` against `reference`: (substitutions + deletions +
/// insertions) / reference words, case-insensitive. For judging engines.
pub fn word_error_rate(reference: &str, hypothesis: &str) -> f64 {
    let r: Vec<String> = reference
        .split_whitespace()
        .map(str::to_lowercase)
        .collect();
    let h: Vec<String> = hypothesis
        .split_whitespace()
        .map(str::to_lowercase)
        .collect();
    let mut row: Vec<usize> = (0..=h.len()).collect();
    for (i, rw) in r.iter().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, hw) in h.iter().enumerate() {
            let next = (diagonal + usize::from(rw != hw))
                .min(row[j] + 1)
                .min(row[j + 1] + 1);
            diagonal = row[j + 1];
            row[j + 1] = next;
        }
    }
    row[h.len()] as f64 / r.len().max(1) as f64
}

#[cfg(test)]
mod wer_tests {
    #[test]
    fn counts_substitutions_deletions_and_insertions() {
        use super::word_error_rate as wer;
        assert_eq!(wer("one two three four", "one two three four"), 0.0);
        assert_eq!(wer("one two three four", "one too three"), 0.5);
        assert_eq!(wer("one two", "One two two"), 0.5);
        assert_eq!(wer("", ""), 0.0);
    }
}
