//! A dynamic interval tree for stabbing queries: a treap ordered by lower bound, each node
//! augmented with the highest upper bound of its subtree. Insert and remove cost O(log n)
//! expected; a query costs O(log n) per reported interval at worst, and prunes every subtree
//! that cannot hold the point.

/// No node.
const NIL: u32 = u32::MAX;

#[derive(Debug, Clone)]
struct Node {
    low: f64,
    high: f64,
    /// Highest `high` of the subtree rooted here.
    max: f64,
    item: u32,
    priority: u32,
    left: u32,
    right: u32,
}

/// Closed intervals `[low, high]`, each carrying an item id. `(low, item)` must be unique.
#[derive(Debug)]
pub(crate) struct IntervalTree {
    nodes: Vec<Node>,
    free: Vec<u32>,
    root: u32,
    len: usize,
    /// xorshift state for the treap priorities (deterministic: no need for randomness here).
    seed: u32,
}

impl Default for IntervalTree {
    fn default() -> Self {
        IntervalTree {
            nodes: Vec::new(),
            free: Vec::new(),
            root: NIL,
            len: 0,
            seed: 0x9e37_79b9,
        }
    }
}

impl IntervalTree {
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Slots held, free ones included (for memory accounting and tests).
    #[cfg(test)]
    pub(crate) fn slots(&self) -> usize {
        self.nodes.len()
    }

    fn next_priority(&mut self) -> u32 {
        let mut x = self.seed;
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        self.seed = x;
        x
    }

    /// Adds `[low, high]` for `item`. NaN bounds are taken as unbounded.
    pub(crate) fn insert(&mut self, low: f64, high: f64, item: u32) {
        let low = if low.is_nan() { f64::NEG_INFINITY } else { low };
        let high = if high.is_nan() { f64::INFINITY } else { high };
        let node = Node {
            low,
            high,
            max: high,
            item,
            priority: self.next_priority(),
            left: NIL,
            right: NIL,
        };
        let id = match self.free.pop() {
            Some(id) => {
                self.nodes[id as usize] = node;
                id
            }
            None => {
                self.nodes.push(node);
                (self.nodes.len() - 1) as u32
            }
        };
        let (left, right) = self.split(self.root, low, item, false);
        let left = self.merge(left, id);
        self.root = self.merge(left, right);
        self.len += 1;
    }

    /// Removes the interval inserted with this `low` and `item`; returns whether it was there.
    pub(crate) fn remove(&mut self, low: f64, item: u32) -> bool {
        let low = if low.is_nan() { f64::NEG_INFINITY } else { low };
        let (left, rest) = self.split(self.root, low, item, false);
        let (found, right) = self.split(rest, low, item, true);
        let removed = found != NIL;
        if removed {
            debug_assert!(
                self.nodes[found as usize].left == NIL && self.nodes[found as usize].right == NIL
            );
            self.free.push(found);
            self.len -= 1;
        }
        self.root = self.merge(left, right);
        if self.len == 0 {
            self.nodes = Vec::new();
            self.free = Vec::new();
            self.root = NIL;
        }
        removed
    }

    /// Calls `f` with the item of every interval containing `point`.
    pub(crate) fn stab(&self, point: f64, f: &mut impl FnMut(u32)) {
        self.stab_from(self.root, point, f);
    }

    fn stab_from(&self, mut node: u32, point: f64, f: &mut impl FnMut(u32)) {
        while node != NIL {
            let n = &self.nodes[node as usize];
            if n.max < point {
                return;
            }
            self.stab_from(n.left, point, f);
            if n.low > point {
                // The right subtree starts even later.
                return;
            }
            if point <= n.high {
                f(n.item);
            }
            node = n.right;
        }
    }

    /// Is `(low, item)` before the node's key (or equal, with `or_equal`)?
    fn key_goes_left(&self, node: u32, low: f64, item: u32, or_equal: bool) -> bool {
        let n = &self.nodes[node as usize];
        match n.low.total_cmp(&low).then(n.item.cmp(&item)) {
            std::cmp::Ordering::Less => true,
            std::cmp::Ordering::Equal => or_equal,
            std::cmp::Ordering::Greater => false,
        }
    }

    /// Splits into (keys < key, keys >= key), or (keys <= key, keys > key) with `or_equal`.
    fn split(&mut self, node: u32, low: f64, item: u32, or_equal: bool) -> (u32, u32) {
        if node == NIL {
            return (NIL, NIL);
        }
        if self.key_goes_left(node, low, item, or_equal) {
            let right = self.nodes[node as usize].right;
            let (a, b) = self.split(right, low, item, or_equal);
            self.nodes[node as usize].right = a;
            self.update(node);
            (node, b)
        } else {
            let left = self.nodes[node as usize].left;
            let (a, b) = self.split(left, low, item, or_equal);
            self.nodes[node as usize].left = b;
            self.update(node);
            (a, node)
        }
    }

    /// Joins two treaps, every key of `a` being before every key of `b`.
    fn merge(&mut self, a: u32, b: u32) -> u32 {
        if a == NIL {
            return b;
        }
        if b == NIL {
            return a;
        }
        if self.nodes[a as usize].priority > self.nodes[b as usize].priority {
            let right = self.nodes[a as usize].right;
            let merged = self.merge(right, b);
            self.nodes[a as usize].right = merged;
            self.update(a);
            a
        } else {
            let left = self.nodes[b as usize].left;
            let merged = self.merge(a, left);
            self.nodes[b as usize].left = merged;
            self.update(b);
            b
        }
    }

    fn update(&mut self, node: u32) {
        let n = &self.nodes[node as usize];
        let mut max = n.high;
        for child in [n.left, n.right] {
            if child != NIL {
                max = max.max(self.nodes[child as usize].max);
            }
        }
        self.nodes[node as usize].max = max;
    }
}

#[cfg(test)]
mod tests {
    use super::IntervalTree;

    fn stabbed(tree: &IntervalTree, point: f64) -> Vec<u32> {
        let mut out = Vec::new();
        tree.stab(point, &mut |i| out.push(i));
        out.sort_unstable();
        out
    }

    #[test]
    fn agrees_with_a_linear_scan_through_inserts_and_removals() {
        let mut tree = IntervalTree::default();
        let mut live: Vec<(f64, f64, u32)> = Vec::new();
        let mut x: u64 = 0x1234_5678;
        let mut next = |n: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % n
        };
        for step in 0..4000u32 {
            if live.is_empty() || next(3) > 0 {
                let low = next(100) as f64 - if next(10) == 0 { f64::INFINITY } else { 0.0 };
                let high = low.max(0.0) + next(30) as f64;
                let high = if next(10) == 0 { f64::INFINITY } else { high };
                tree.insert(low, high, step);
                live.push((low, high, step));
            } else {
                let (low, _, item) = live.swap_remove(next(live.len() as u64) as usize);
                assert!(tree.remove(low, item));
                assert!(!tree.remove(low, item));
            }
            if step % 50 == 0 {
                for point in [-1.0, 0.0, 3.0, 50.0, 99.5, 130.0, 1e9] {
                    let mut want: Vec<u32> = live
                        .iter()
                        .filter(|(l, h, _)| *l <= point && point <= *h)
                        .map(|t| t.2)
                        .collect();
                    want.sort_unstable();
                    assert_eq!(stabbed(&tree, point), want, "point {point}");
                }
            }
            assert_eq!(tree.len(), live.len());
        }
        for (low, _, item) in live.drain(..) {
            assert!(tree.remove(low, item));
        }
        assert!(tree.is_empty());
        assert_eq!(tree.slots(), 0);
    }
}
