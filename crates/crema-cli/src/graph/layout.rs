//! A layered layout (the Sugiyama scheme dot uses, kept small): ranks by
//! longest path, a virtual node wherever an edge skips ranks, a few
//! barycenter sweeps to order each rank, then coordinates. `rankdir`
//! turns the result as graphviz's attribute of that name does.

/// Graphviz's rankdir: where the first rank sits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RankDir {
    TB,
    BT,
    LR,
    RL,
}

impl RankDir {
    pub fn parse(s: &str) -> Result<RankDir, String> {
        match s {
            "TB" => Ok(RankDir::TB),
            "BT" => Ok(RankDir::BT),
            "LR" => Ok(RankDir::LR),
            "RL" => Ok(RankDir::RL),
            other => Err(format!("rankdir must be TB, BT, LR or RL, got \"{other}\"")),
        }
    }
    fn horizontal(self) -> bool {
        matches!(self, RankDir::LR | RankDir::RL)
    }
}

/// Where everything goes: node centers and each edge as a polyline.
#[derive(Clone, Debug)]
pub struct Layout {
    pub centers: Vec<(f64, f64)>,
    pub edges: Vec<Vec<(f64, f64)>>,
    pub width: f64,
    pub height: f64,
}

const RANK_GAP: f64 = 44.0;
const NODE_GAP: f64 = 24.0;
const MARGIN: f64 = 16.0;

/// Lays out `sizes.len()` nodes of (width, height) joined by `edges`
/// (from, to). Cycles, which a net cannot have, are broken by input order.
pub fn layout(sizes: &[(f64, f64)], edges: &[(usize, usize)], dir: RankDir) -> Layout {
    let n = sizes.len();
    let rank = ranks(n, edges);
    // Extent along the rank axis and across it, per node.
    let (main, cross): (Vec<f64>, Vec<f64>) = sizes
        .iter()
        .map(|&(w, h)| if dir.horizontal() { (w, h) } else { (h, w) })
        .unzip();

    // Chains of virtual nodes for edges that skip ranks.
    let mut rank_of: Vec<usize> = rank.clone();
    let mut cross_size: Vec<f64> = cross.clone();
    let mut chains: Vec<Vec<usize>> = Vec::with_capacity(edges.len());
    for &(a, b) in edges {
        let mut chain = vec![a];
        if rank[b] > rank[a] + 1 {
            for r in rank[a] + 1..rank[b] {
                rank_of.push(r);
                cross_size.push(2.0);
                chain.push(rank_of.len() - 1);
            }
        }
        chain.push(b);
        chains.push(chain);
    }
    let total = rank_of.len();
    let ranks_n = rank_of.iter().copied().max().map_or(0, |r| r + 1);
    let mut preds: Vec<Vec<usize>> = vec![Vec::new(); total];
    let mut succs: Vec<Vec<usize>> = vec![Vec::new(); total];
    for chain in &chains {
        for w in chain.windows(2) {
            if rank_of[w[1]] > rank_of[w[0]] {
                preds[w[1]].push(w[0]);
                succs[w[0]].push(w[1]);
            }
        }
    }
    let mut order: Vec<Vec<usize>> = vec![Vec::new(); ranks_n];
    for v in 0..total {
        order[rank_of[v]].push(v);
    }
    let mut pos = vec![0.0f64; total];
    let reindex = |order: &Vec<Vec<usize>>, pos: &mut Vec<f64>| {
        for row in order {
            for (i, &v) in row.iter().enumerate() {
                pos[v] = i as f64;
            }
        }
    };
    reindex(&order, &mut pos);
    for sweep in 0..6 {
        let down = sweep % 2 == 0;
        let rows: Vec<usize> = if down {
            (1..ranks_n).collect()
        } else {
            (0..ranks_n.saturating_sub(1)).rev().collect()
        };
        for r in rows {
            let adj = if down { &preds } else { &succs };
            let key = |v: usize| {
                let a = &adj[v];
                if a.is_empty() {
                    pos[v]
                } else {
                    a.iter().map(|&u| pos[u]).sum::<f64>() / a.len() as f64
                }
            };
            let mut keyed: Vec<(f64, usize)> = order[r].iter().map(|&v| (key(v), v)).collect();
            keyed.sort_by(|x, y| x.0.total_cmp(&y.0));
            order[r] = keyed.into_iter().map(|(_, v)| v).collect();
            for (i, &v) in order[r].iter().enumerate() {
                pos[v] = i as f64;
            }
        }
    }

    // Cross coordinates: each node wants the mean of its predecessors'
    // centers; a left-to-right pass then removes overlaps.
    let mut cx = vec![0.0f64; total];
    for (r, row) in order.iter().enumerate() {
        let mut edge = f64::NEG_INFINITY;
        for &v in row {
            let want = if r > 0 && !preds[v].is_empty() {
                preds[v].iter().map(|&u| cx[u]).sum::<f64>() / preds[v].len() as f64
            } else {
                edge + NODE_GAP + cross_size[v] / 2.0
            };
            let lo = if edge.is_finite() {
                edge + NODE_GAP + cross_size[v] / 2.0
            } else {
                want
            };
            cx[v] = if want.is_finite() {
                want.max(lo)
            } else {
                cross_size[v] / 2.0
            };
            edge = cx[v] + cross_size[v] / 2.0;
        }
    }
    let lo = (0..total)
        .map(|v| cx[v] - cross_size[v] / 2.0)
        .fold(f64::INFINITY, f64::min);
    let hi = (0..total)
        .map(|v| cx[v] + cross_size[v] / 2.0)
        .fold(f64::NEG_INFINITY, f64::max);
    let (lo, hi) = if total == 0 { (0.0, 0.0) } else { (lo, hi) };
    for c in &mut cx {
        *c += MARGIN - lo;
    }
    let cross_len = hi - lo + 2.0 * MARGIN;

    // Rank axis: each rank as deep as its deepest node.
    let mut depth = vec![0.0f64; ranks_n];
    for v in 0..n {
        depth[rank_of[v]] = depth[rank_of[v]].max(main[v]);
    }
    let mut start = vec![MARGIN; ranks_n];
    for r in 1..ranks_n {
        start[r] = start[r - 1] + depth[r - 1] + RANK_GAP;
    }
    let main_len = if ranks_n == 0 {
        2.0 * MARGIN
    } else {
        start[ranks_n - 1] + depth[ranks_n - 1] + MARGIN
    };
    let mc: Vec<f64> = (0..total)
        .map(|v| {
            let m = start[rank_of[v]] + depth[rank_of[v]] / 2.0;
            match dir {
                RankDir::BT | RankDir::RL => main_len - m,
                _ => m,
            }
        })
        .collect();
    let to_xy = |v: usize| {
        if dir.horizontal() {
            (mc[v], cx[v])
        } else {
            (cx[v], mc[v])
        }
    };
    let centers: Vec<(f64, f64)> = (0..n).map(to_xy).collect();
    let (width, height) = if dir.horizontal() {
        (main_len, cross_len)
    } else {
        (cross_len, main_len)
    };
    let edge_lines = chains
        .iter()
        .map(|chain| {
            let mut pts: Vec<(f64, f64)> = chain.iter().map(|&v| to_xy(v)).collect();
            // End on the node borders, not their centers.
            let (a, b) = (chain[0], chain[chain.len() - 1]);
            if pts.len() >= 2 {
                let k = pts.len();
                pts[0] = border(pts[0], pts[1], sizes[a]);
                pts[k - 1] = border(pts[k - 1], pts[k - 2], sizes[b]);
            }
            pts
        })
        .collect();
    Layout {
        centers,
        edges: edge_lines,
        width,
        height,
    }
}

/// Longest-path ranks; nodes left on a cycle rank after their inputs seen so far.
fn ranks(n: usize, edges: &[(usize, usize)]) -> Vec<usize> {
    let mut indeg = vec![0usize; n];
    let mut out: Vec<Vec<usize>> = vec![Vec::new(); n];
    for &(a, b) in edges {
        if a != b {
            indeg[b] += 1;
            out[a].push(b);
        }
    }
    let mut rank = vec![0usize; n];
    let mut done = vec![false; n];
    let mut queue: Vec<usize> = (0..n).filter(|&v| indeg[v] == 0).collect();
    let mut seen = 0;
    while seen < n {
        if queue.is_empty() {
            // A cycle: take the first unfinished node as if its inputs were done.
            let v = (0..n).find(|&v| !done[v]).expect("nodes left");
            indeg[v] = 0;
            queue.push(v);
        }
        let mut next = Vec::new();
        for v in queue.drain(..) {
            if done[v] {
                continue;
            }
            done[v] = true;
            seen += 1;
            for &w in &out[v] {
                if done[w] {
                    continue;
                }
                rank[w] = rank[w].max(rank[v] + 1);
                indeg[w] = indeg[w].saturating_sub(1);
                if indeg[w] == 0 {
                    next.push(w);
                }
            }
        }
        queue = next;
    }
    rank
}

/// Where the segment from a box's center toward `toward` leaves the box.
fn border(center: (f64, f64), toward: (f64, f64), size: (f64, f64)) -> (f64, f64) {
    let (dx, dy) = (toward.0 - center.0, toward.1 - center.1);
    if dx == 0.0 && dy == 0.0 {
        return center;
    }
    let sx = if dx != 0.0 {
        (size.0 / 2.0) / dx.abs()
    } else {
        f64::INFINITY
    };
    let sy = if dy != 0.0 {
        (size.1 / 2.0) / dy.abs()
    } else {
        f64::INFINITY
    };
    let s = sx.min(sy).min(1.0);
    (center.0 + dx * s, center.1 + dy * s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn overlap(l: &Layout, sizes: &[(f64, f64)], a: usize, b: usize) -> bool {
        let (pa, pb) = (l.centers[a], l.centers[b]);
        (pa.0 - pb.0).abs() * 2.0 < sizes[a].0 + sizes[b].0
            && (pa.1 - pb.1).abs() * 2.0 < sizes[a].1 + sizes[b].1
    }

    #[test]
    fn a_chain_goes_down_in_tb_and_up_in_bt() {
        let sizes = [(40.0, 20.0); 3];
        let edges = [(0, 1), (1, 2)];
        let tb = layout(&sizes, &edges, RankDir::TB);
        assert!(tb.centers[0].1 < tb.centers[1].1 && tb.centers[1].1 < tb.centers[2].1);
        let bt = layout(&sizes, &edges, RankDir::BT);
        assert!(bt.centers[0].1 > bt.centers[1].1 && bt.centers[1].1 > bt.centers[2].1);
        let lr = layout(&sizes, &edges, RankDir::LR);
        assert!(lr.centers[0].0 < lr.centers[1].0 && lr.centers[1].0 < lr.centers[2].0);
        let rl = layout(&sizes, &edges, RankDir::RL);
        assert!(rl.centers[0].0 > rl.centers[2].0);
    }

    #[test]
    fn no_two_nodes_overlap_and_all_fit_the_canvas() {
        // A diamond with a long edge 0 -> 4 skipping two ranks.
        let sizes = [
            (80.0, 30.0),
            (50.0, 30.0),
            (120.0, 30.0),
            (60.0, 30.0),
            (70.0, 30.0),
        ];
        let edges = [(0, 1), (0, 2), (1, 3), (2, 3), (3, 4), (0, 4)];
        for dir in [RankDir::TB, RankDir::LR] {
            let l = layout(&sizes, &edges, dir);
            for a in 0..5 {
                for b in a + 1..5 {
                    assert!(!overlap(&l, &sizes, a, b), "{a} and {b} overlap in {dir:?}");
                }
                let (x, y) = l.centers[a];
                assert!(x - sizes[a].0 / 2.0 >= 0.0 && x + sizes[a].0 / 2.0 <= l.width);
                assert!(y - sizes[a].1 / 2.0 >= 0.0 && y + sizes[a].1 / 2.0 <= l.height);
            }
            // The long edge bends through two virtual points.
            assert_eq!(l.edges[5].len(), 4);
        }
    }

    #[test]
    fn a_cycle_does_not_hang() {
        let l = layout(&[(10.0, 10.0); 2], &[(0, 1), (1, 0)], RankDir::TB);
        assert_eq!(l.centers.len(), 2);
    }

    #[test]
    fn rankdir_names_are_graphviz_names() {
        assert_eq!(RankDir::parse("LR").unwrap(), RankDir::LR);
        assert!(RankDir::parse("XY").unwrap_err().contains("\"XY\""));
    }
}
