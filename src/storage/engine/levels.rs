//! The set of live tables by level, and which compaction to run next.
//!
//! Level 0 holds flushed memtables, which may overlap; it is kept newest first. Every deeper
//! level holds tables with disjoint key ranges, sorted by key. For any key, a version in a
//! shallower level (or an earlier level-0 table) is newer than any in a deeper one.

use std::sync::Arc;

use super::table::Table;

pub const LEVELS: usize = 7;

#[derive(Clone, Default)]
pub struct Levels {
    pub levels: [Vec<Arc<Table>>; LEVELS],
}

/// A compaction: merge `inputs` and write them to `output_level`.
pub struct CompactionTask {
    pub inputs: Vec<Arc<Table>>,
    pub output_level: u32,
    /// No deeper level holds any table: tombstones may be dropped (policy permitting).
    pub bottom: bool,
}

/// Knobs of the picking rule.
pub struct Shape {
    pub l0_trigger: usize,
    pub level1_bytes: u64,
    pub ratio: u64,
}

impl Levels {
    pub fn from_tables(tables: impl IntoIterator<Item = Arc<Table>>) -> Levels {
        let mut v = Levels::default();
        for t in tables {
            let level = (t.meta.level as usize).min(LEVELS - 1);
            v.levels[level].push(t);
        }
        v.sort();
        v
    }

    fn sort(&mut self) {
        self.levels[0].sort_by_key(|t| std::cmp::Reverse(t.meta.max_seq));
        for level in &mut self.levels[1..] {
            level.sort_by(|a, b| a.meta.min_key.cmp(&b.meta.min_key));
        }
    }

    /// A new version without the `removed` table ids and with `added`.
    pub fn apply(&self, removed: &[u64], added: &[Arc<Table>]) -> Levels {
        let mut v = self.clone();
        for level in &mut v.levels {
            level.retain(|t| !removed.contains(&t.id()));
        }
        for t in added {
            v.levels[(t.meta.level as usize).min(LEVELS - 1)].push(t.clone());
        }
        v.sort();
        v
    }

    pub fn tables(&self) -> impl Iterator<Item = &Arc<Table>> {
        self.levels.iter().flatten()
    }

    pub fn level_bytes(&self, level: usize) -> u64 {
        self.levels[level].iter().map(|t| t.meta.file_bytes).sum()
    }

    fn deepest_nonempty(&self) -> usize {
        (0..LEVELS)
            .rev()
            .find(|&l| !self.levels[l].is_empty())
            .unwrap_or(0)
    }

    fn overlapping(&self, level: usize, lo: &[u8], hi: &[u8]) -> Vec<Arc<Table>> {
        self.levels[level]
            .iter()
            .filter(|t| t.meta.overlaps(lo, hi))
            .cloned()
            .collect()
    }

    fn task(&self, mut inputs: Vec<Arc<Table>>, next: usize) -> CompactionTask {
        let lo = inputs
            .iter()
            .map(|t| t.meta.min_key.clone())
            .min()
            .unwrap_or_default();
        let hi = inputs
            .iter()
            .map(|t| t.meta.max_key.clone())
            .max()
            .unwrap_or_default();
        inputs.extend(self.overlapping(next, &lo, &hi));
        CompactionTask {
            inputs,
            output_level: next as u32,
            bottom: (next + 1..LEVELS).all(|l| self.levels[l].is_empty()),
        }
    }

    /// The compaction the shape calls for, if any: level 0 when it has too many tables, else
    /// the shallowest level over its size target (one table of it, chosen after `cursor`).
    pub fn pick(&self, shape: &Shape, cursors: &mut [Vec<u8>; LEVELS]) -> Option<CompactionTask> {
        if self.levels[0].len() >= shape.l0_trigger.max(1) {
            return Some(self.task(self.levels[0].clone(), 1));
        }
        let mut target = shape.level1_bytes;
        for (level, cursor) in cursors.iter_mut().enumerate().take(LEVELS - 1).skip(1) {
            if self.level_bytes(level) > target {
                let tables = &self.levels[level];
                let chosen = tables
                    .iter()
                    .find(|t| t.meta.min_key > *cursor)
                    .unwrap_or(&tables[0])
                    .clone();
                *cursor = chosen.meta.max_key.clone();
                return Some(self.task(vec![chosen], level + 1));
            }
            target = target.saturating_mul(shape.ratio.max(2));
        }
        None
    }

    /// Everything merged into one level (the deepest in use, at least 1).
    pub fn full(&self) -> Option<CompactionTask> {
        let tables: Vec<_> = self.tables().cloned().collect();
        if tables.is_empty() {
            return None;
        }
        let output_level = self.deepest_nonempty().max(1) as u32;
        Some(CompactionTask {
            inputs: tables,
            output_level,
            bottom: true,
        })
    }
}
