//! The trace: every step's line folded into the run's digest (FNV-1a), the tail kept for
//! the report, and the narration of the demo.

use super::*;

impl Sim {
    pub(super) fn trace(&mut self, line: String) {
        self.digest = fnv1a64_from(self.digest, line.as_bytes());
        self.digest = fnv1a64_from(self.digest, &self.now_us.to_le_bytes());
        if let Some(echo) = self.echo {
            echo(&format!("{:>9.3}s  {line}", self.now_us as f64 / 1e6));
        }
        const TAIL: usize = 60;
        let line = format!("{:>12}us {line}", self.now_us);
        if self.tail.len() < TAIL || self.verbose {
            self.tail.push(line);
        } else {
            self.tail[self.tail_at] = line;
            self.tail_at = (self.tail_at + 1) % TAIL;
        }
    }

    /// A line for a watching person only (the demo): printed, but not part of the trace, so it
    /// changes neither the digest nor the speed of a normal run.
    pub(super) fn narrate(&self, line: &str) {
        if let Some(echo) = self.echo {
            echo(&format!("{:>9.3}s    {line}", self.now_us as f64 / 1e6));
        }
    }

    pub(super) fn name(&self, n: NodeId) -> &str {
        &self.spec.nodes[usize::from(n)].name
    }
}
