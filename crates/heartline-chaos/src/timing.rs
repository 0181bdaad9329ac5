//! Durations collected over a run, summarised as median, p95 and max.

use std::time::Duration;

#[derive(Debug, Default)]
pub struct Samples(Vec<Duration>);

impl Samples {
    pub fn push(&mut self, sample: Duration) {
        self.0.push(sample);
    }

    /// The value at quantile `q` (0..=1), nearest rank.
    fn quantile(sorted: &[Duration], q: f64) -> Duration {
        if sorted.is_empty() {
            return Duration::ZERO;
        }
        let rank = (q * sorted.len() as f64).ceil() as usize;
        sorted[rank.clamp(1, sorted.len()) - 1]
    }

    pub fn summary(&self) -> String {
        if self.0.is_empty() {
            return "no samples".to_owned();
        }
        let mut sorted = self.0.clone();
        sorted.sort();
        let ms = |d: Duration| d.as_millis();
        format!(
            "median {} ms, p95 {} ms, max {} ms (n={})",
            ms(Self::quantile(&sorted, 0.5)),
            ms(Self::quantile(&sorted, 0.95)),
            ms(Self::quantile(&sorted, 1.0)),
            sorted.len()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_quantiles() {
        let mut s = Samples::default();
        for ms in [5, 1, 4, 2, 3] {
            s.push(Duration::from_millis(ms));
        }
        assert_eq!(s.summary(), "median 3 ms, p95 5 ms, max 5 ms (n=5)");
        assert_eq!(Samples::default().summary(), "no samples");
    }
}
