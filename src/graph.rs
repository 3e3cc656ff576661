//! Dependency levels of a graph of numbered nodes: what a compose file's
//! cycle check, the plan's service levels and `node_order`'s role levels
//! are computed with. A depth-first
//! walk with an explicit stack, so a chain of any length neither recurses
//! (a 20,000-service chain would overflow a thread's stack) nor scans the
//! path to find a cycle (a position per node says at once whether it is on
//! the path): time and memory grow with nodes plus edges. Callers number
//! their nodes in the order they want them tried (sorted names), so the
//! cycle reported is the same from run to run. Pure.

/// The level of each node: 0 for one that needs nothing, else one more
/// than the highest level among what it needs (`needs[i]`, tried in
/// order). A cycle stops the walk: the nodes on it, from the first one the
/// walk entered to that one again.
pub fn levels(needs: &[Vec<usize>]) -> Result<Vec<usize>, Vec<usize>> {
    let mut level: Vec<Option<usize>> = vec![None; needs.len()];
    // Where a node sits on the walk's path, while it is on it.
    let mut on_path: Vec<Option<usize>> = vec![None; needs.len()];
    for root in 0..needs.len() {
        if level[root].is_some() {
            continue;
        }
        // (node, how many of its needs were tried, its level so far)
        let mut path: Vec<(usize, usize, usize)> = vec![(root, 0, 0)];
        on_path[root] = Some(0);
        while let Some(top) = path.last_mut() {
            let (node, tried, highest) = *top;
            match needs[node].get(tried).copied() {
                Some(need) => {
                    top.1 += 1;
                    if let Some(known) = level[need] {
                        top.2 = highest.max(known + 1);
                    } else if let Some(start) = on_path[need] {
                        let mut cycle: Vec<usize> = path[start..].iter().map(|f| f.0).collect();
                        cycle.push(need);
                        return Err(cycle);
                    } else {
                        on_path[need] = Some(path.len());
                        path.push((need, 0, 0));
                    }
                }
                None => {
                    path.pop();
                    on_path[node] = None;
                    level[node] = Some(highest);
                    if let Some(parent) = path.last_mut() {
                        parent.2 = parent.2.max(highest + 1);
                    }
                }
            }
        }
    }
    Ok(level.into_iter().map(|l| l.unwrap_or(0)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_take_the_highest_need_and_cycles_name_their_path() {
        // 0 needs 1 and 2; 2 needs 1; 3 needs nothing.
        assert_eq!(
            levels(&[vec![1, 2], vec![], vec![1], vec![]]),
            Ok(vec![2, 0, 1, 0])
        );
        // 0 -> 1 -> 2 -> 1: the walk enters the cycle at 1.
        assert_eq!(levels(&[vec![1], vec![2], vec![1]]), Err(vec![1, 2, 1]));
        assert_eq!(levels(&[vec![0]]), Err(vec![0, 0]));
        assert_eq!(levels(&[]), Ok(vec![]));
    }

    #[test]
    fn a_long_chain_needs_no_deep_stack() {
        // Each node needs the next: the first is the deepest, the worst
        // order for a recursive walk.
        let n = 200_000;
        let needs: Vec<Vec<usize>> = (0..n)
            .map(|i| if i + 1 < n { vec![i + 1] } else { vec![] })
            .collect();
        let got = levels(&needs).unwrap();
        assert_eq!(got[0], n - 1);
        assert_eq!(got[n - 1], 0);
    }
}
