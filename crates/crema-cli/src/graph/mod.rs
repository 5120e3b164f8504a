//! A net as a drawable graph, the picture Caffe's draw_net.py makes: layer
//! nodes, blob nodes (with their shapes when the net was built), edges
//! between them, in-place layers and the phases a layer belongs to.
//!
//! Blobs written in place get a new node per write (`ip1`, then `ip1` after
//! relu1), so the graph stays acyclic and lays out in ranks; a Split layer
//! the net inserted is drawn as the fan-out edges it stands for.
use std::collections::HashMap;

use crema::proto::caffe::{LayerParameter, NetParameter, Phase};
use serde_json::{json, Value};

pub mod layout;
pub mod svg;

/// Layer or blob.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeKind {
    Layer,
    Blob,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    pub kind: NodeKind,
    pub name: String,
    /// The layer type ("Convolution"); empty for blobs.
    pub layer_type: String,
    /// Label lines after the name: draw_net's kernel/stride/pad, lr mult.
    pub details: Vec<String>,
    /// A blob's shape, when known.
    pub shape: Option<Vec<usize>>,
    /// The phases ("TRAIN", "TEST") the node belongs to.
    pub phases: Vec<String>,
    /// A layer whose only top is its only bottom (drawn as a neuron layer).
    pub in_place: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Edge {
    pub from: usize,
    pub to: usize,
    /// draw_net's edge label: batch size after Data, num_output after
    /// Convolution/InnerProduct.
    pub label: String,
    /// The write of an in-place layer back into its blob.
    pub in_place: bool,
    /// One branch of a blob the net splits between several consumers.
    pub split: bool,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct NetGraph {
    pub name: String,
    pub nodes: Vec<Node>,
    pub edges: Vec<Edge>,
    /// Every phase that contributed a layer, in order of appearance.
    pub phases: Vec<String>,
}

/// One layer as the graph needs it.
#[derive(Clone, Debug, Default)]
pub struct LayerDesc {
    pub name: String,
    pub layer_type: String,
    pub bottoms: Vec<String>,
    pub tops: Vec<String>,
    pub top_shapes: Vec<Option<Vec<usize>>>,
    pub details: Vec<String>,
    pub edge_label: String,
}

/// Label options of draw_net.py.
#[derive(Clone, Copy, Debug, Default)]
pub struct LabelOptions {
    /// Details on one line (TB/BT) or one per line (LR/RL), as draw_net does.
    pub one_line: bool,
    /// `--display_lrm`: the learning-rate multipliers of weight layers.
    pub display_lrm: bool,
}

impl LayerDesc {
    /// A layer of a prototxt, labelled as draw_net labels it (no shapes).
    pub fn from_param(layer: &LayerParameter, opts: LabelOptions) -> LayerDesc {
        let ty = layer.type_().to_string();
        let mut details = Vec::new();
        let first = |v: &[u32], d: u32| v.first().copied().unwrap_or(d);
        match ty.as_str() {
            "Convolution" | "Deconvolution" => {
                let p = &layer.convolution_param;
                details.push(format!("kernel size: {}", first(&p.kernel_size, 1)));
                details.push(format!("stride: {}", first(&p.stride, 1)));
                details.push(format!("pad: {}", first(&p.pad, 0)));
            }
            "Pooling" => {
                let p = &layer.pooling_param;
                details.push(format!("pool: {:?}", p.pool()));
                details.push(format!("kernel size: {}", p.kernel_size()));
                details.push(format!("stride: {}", p.stride()));
                details.push(format!("pad: {}", p.pad()));
            }
            _ => {}
        }
        if opts.display_lrm
            && matches!(
                ty.as_str(),
                "Convolution" | "Deconvolution" | "InnerProduct"
            )
        {
            let mults: Vec<String> = if layer.param.is_empty() {
                vec!["1".into(), "1".into()]
            } else {
                layer
                    .param
                    .iter()
                    .map(|p| format!("{}", p.lr_mult()))
                    .collect()
            };
            details.push(format!("lr mult: {}", mults.join(", ")));
        }
        if opts.one_line && !details.is_empty() {
            details = vec![details.join(" ")];
        }
        let edge_label = match ty.as_str() {
            "Data" => format!("Batch {}", layer.data_param.batch_size()),
            "Convolution" | "Deconvolution" => layer.convolution_param.num_output().to_string(),
            "InnerProduct" => layer.inner_product_param.num_output().to_string(),
            _ => String::new(),
        };
        LayerDesc {
            name: layer.name().to_string(),
            layer_type: ty,
            bottoms: layer.bottom.clone(),
            tops: layer.top.clone(),
            top_shapes: vec![None; layer.top.len()],
            details,
            edge_label,
        }
    }

    /// Every layer of a built net, with its tops' shapes.
    pub fn from_net(net: &crema::net::Net) -> Vec<LayerDesc> {
        let opts = LabelOptions::default();
        (0..net.layers().len())
            .map(|i| {
                let mut d = LayerDesc::from_param(&net.layer_params()[i], opts);
                d.top_shapes = net
                    .top_ids(i)
                    .iter()
                    .map(|&b| Some(net.blobs()[b].borrow().shape().to_vec()))
                    .collect();
                d
            })
            .collect()
    }
}

/// The phases a layer's include/exclude rules allow (draw_net's test).
pub fn layer_phases(layer: &LayerParameter) -> Vec<Phase> {
    [Phase::TRAIN, Phase::TEST]
        .into_iter()
        .filter(|&phase| {
            let mut included = layer.include.is_empty();
            for r in &layer.include {
                included |= r.has_phase() && r.phase() == phase;
            }
            for r in &layer.exclude {
                included &= !(r.has_phase() && r.phase() == phase);
            }
            included
        })
        .collect()
}

pub fn phase_name(p: Phase) -> &'static str {
    match p {
        Phase::TRAIN => "TRAIN",
        Phase::TEST => "TEST",
    }
}

/// Accumulates nets (or phases of one prototxt) into one graph.
#[derive(Default)]
pub struct GraphBuilder {
    graph: NetGraph,
    index: HashMap<String, usize>,
    edge_index: HashMap<(usize, usize), usize>,
    /// Within the net being added: blob name -> its latest node, and whether
    /// that name is a Split layer's branch.
    current: HashMap<String, (usize, bool)>,
    writes: HashMap<String, usize>,
}

impl GraphBuilder {
    pub fn new(name: &str) -> GraphBuilder {
        let mut b = GraphBuilder::default();
        b.graph.name = name.to_string();
        b
    }

    /// Starts another net (another phase): blob versions start over, so the
    /// same blobs of two phases meet in the same nodes.
    pub fn begin_net(&mut self) {
        self.current.clear();
        self.writes.clear();
    }

    fn node(&mut self, key: String, make: impl FnOnce() -> Node, phases: &[&str]) -> usize {
        let id = match self.index.get(&key) {
            Some(&id) => id,
            None => {
                self.graph.nodes.push(make());
                self.index.insert(key, self.graph.nodes.len() - 1);
                self.graph.nodes.len() - 1
            }
        };
        for p in phases {
            if !self.graph.nodes[id].phases.iter().any(|q| q == p) {
                self.graph.nodes[id].phases.push(p.to_string());
            }
            if !self.graph.phases.iter().any(|q| q == p) {
                self.graph.phases.push(p.to_string());
            }
        }
        id
    }

    fn edge(&mut self, from: usize, to: usize, label: &str, in_place: bool, split: bool) {
        if self.edge_index.contains_key(&(from, to)) {
            return;
        }
        self.edge_index.insert((from, to), self.graph.edges.len());
        self.graph.edges.push(Edge {
            from,
            to,
            label: label.to_string(),
            in_place,
            split,
        });
    }

    fn blob_node(&mut self, name: &str, version: usize, phases: &[&str]) -> usize {
        let key = format!("blob:{name}#{version}");
        let blob = || Node {
            kind: NodeKind::Blob,
            name: name.to_string(),
            layer_type: String::new(),
            details: Vec::new(),
            shape: None,
            phases: Vec::new(),
            in_place: false,
        };
        self.node(key, blob, phases)
    }

    /// Adds one layer of the current net, in net order.
    pub fn add_layer(&mut self, d: &LayerDesc, phases: &[&str]) {
        if d.layer_type == "Split" && d.bottoms.len() == 1 {
            // The branches are the bottom blob itself, reached by split edges.
            if let Some(&(src, _)) = self.current.get(&d.bottoms[0]) {
                for t in &d.tops {
                    self.current.insert(t.clone(), (src, true));
                }
                return;
            }
        }
        let in_place = d.bottoms.len() == 1 && d.tops.len() == 1 && d.bottoms[0] == d.tops[0];
        let layer = || Node {
            kind: NodeKind::Layer,
            name: d.name.clone(),
            layer_type: d.layer_type.clone(),
            details: d.details.clone(),
            shape: None,
            phases: Vec::new(),
            in_place,
        };
        let id = self.node(format!("layer:{}", d.name), layer, phases);
        for b in &d.bottoms {
            let (src, split) = match self.current.get(b) {
                Some(&v) => v,
                None => {
                    let n = self.blob_node(b, 0, phases);
                    self.current.insert(b.clone(), (n, false));
                    (n, false)
                }
            };
            self.edge(src, id, "", false, split);
            let n = &mut self.graph.nodes[src];
            for p in phases {
                if !n.phases.iter().any(|q| q == p) {
                    n.phases.push(p.to_string());
                }
            }
        }
        for (k, t) in d.tops.iter().enumerate() {
            // A name written again (in place, or redefined) is a new version.
            let version = match self.writes.get(t) {
                Some(&v) => v + 1,
                None if self.current.contains_key(t) => 1,
                None => 0,
            };
            self.writes.insert(t.clone(), version);
            let n = self.blob_node(t, version, phases);
            if let Some(Some(shape)) = d.top_shapes.get(k) {
                // The first net's shape stays; another phase's differing
                // batch is noted beside it.
                let node = &mut self.graph.nodes[n];
                match &node.shape {
                    None => node.shape = Some(shape.clone()),
                    Some(s) if s != shape => {
                        let note = format!("{}: {}", phases.join(", "), svg::shape_text(shape));
                        if !node.details.contains(&note) {
                            node.details.push(note);
                        }
                    }
                    Some(_) => {}
                }
            }
            self.current.insert(t.clone(), (n, false));
            let written_in_place = d.bottoms.iter().any(|b| b == t);
            self.edge(id, n, &d.edge_label, written_in_place, false);
        }
    }

    pub fn finish(self) -> NetGraph {
        self.graph
    }
}

/// draw_net's graph of a prototxt: the layers `phase` includes, or with
/// None (draw_net's ALL) each phase's layers drawn over each other, so
/// what both phases share is one node.
pub fn from_net_param(param: &NetParameter, phase: Option<Phase>, opts: LabelOptions) -> NetGraph {
    let mut b = GraphBuilder::new(param.name());
    let phases = match phase {
        Some(p) => vec![p],
        None => vec![Phase::TRAIN, Phase::TEST],
    };
    for p in phases {
        b.begin_net();
        for layer in &param.layer {
            if layer_phases(layer).contains(&p) {
                b.add_layer(&LayerDesc::from_param(layer, opts), &[phase_name(p)]);
            }
        }
    }
    b.finish()
}

/// The graph of built nets (the train net and the test nets), with shapes,
/// Split fan-outs and each layer's phases.
pub fn from_nets(name: &str, nets: &[&crema::net::Net]) -> NetGraph {
    let mut b = GraphBuilder::new(name);
    for net in nets {
        b.begin_net();
        let phase = [phase_name(net.phase())];
        for d in LayerDesc::from_net(net) {
            b.add_layer(&d, &phase);
        }
    }
    b.finish()
}

impl NetGraph {
    pub fn to_json(&self) -> Value {
        let nodes: Vec<Value> = self
            .nodes
            .iter()
            .map(|n| {
                json!({
                    "kind": if n.kind == NodeKind::Layer { "layer" } else { "blob" },
                    "name": n.name, "type": n.layer_type, "details": n.details,
                    "shape": n.shape, "phases": n.phases, "in_place": n.in_place,
                })
            })
            .collect();
        let edges: Vec<Value> = self
            .edges
            .iter()
            .map(|e| json!({"from": e.from, "to": e.to, "label": e.label, "in_place": e.in_place, "split": e.split}))
            .collect();
        json!({"name": self.name, "nodes": nodes, "edges": edges, "phases": self.phases})
    }

    /// Reads `to_json`'s form back (a dashboard started on an event file).
    pub fn from_json(v: &Value) -> Result<NetGraph, String> {
        let bad = |what: &str| format!("net graph: {what} is missing or malformed");
        let strs = |v: &Value| -> Vec<String> {
            v.as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|s| s.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default()
        };
        let mut g = NetGraph {
            name: v["name"].as_str().unwrap_or("").to_string(),
            phases: strs(&v["phases"]),
            ..NetGraph::default()
        };
        for n in v["nodes"].as_array().ok_or_else(|| bad("nodes"))? {
            g.nodes.push(Node {
                kind: if n["kind"] == "layer" {
                    NodeKind::Layer
                } else {
                    NodeKind::Blob
                },
                name: n["name"]
                    .as_str()
                    .ok_or_else(|| bad("node name"))?
                    .to_string(),
                layer_type: n["type"].as_str().unwrap_or("").to_string(),
                details: strs(&n["details"]),
                shape: n["shape"].as_array().map(|a| {
                    a.iter()
                        .filter_map(|d| d.as_u64().map(|d| d as usize))
                        .collect()
                }),
                phases: strs(&n["phases"]),
                in_place: n["in_place"].as_bool().unwrap_or(false),
            });
        }
        for e in v["edges"].as_array().ok_or_else(|| bad("edges"))? {
            let end = |k: &str| -> Result<usize, String> {
                let i = e[k].as_u64().ok_or_else(|| bad("edge end"))? as usize;
                if i >= g.nodes.len() {
                    return Err(bad("edge end"));
                }
                Ok(i)
            };
            let (from, to) = (end("from")?, end("to")?);
            g.edges.push(Edge {
                from,
                to,
                label: e["label"].as_str().unwrap_or("").to_string(),
                in_place: e["in_place"].as_bool().unwrap_or(false),
                split: e["split"].as_bool().unwrap_or(false),
            });
        }
        Ok(g)
    }
}

#[cfg(test)]
mod tests;
