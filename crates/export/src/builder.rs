//! A small graph builder: named initialisers, auto-named intermediate values, and one
//! method per operator pattern the exporter emits (linear, layer norm, GELU, attention,
//! Fourier coordinate encoding, masked mean). Every pattern has a golden test.

use crate::proto::{Attr, DataType, Dim, GraphProto, NodeProto, TensorProto, ValueInfo};

/// Builds one ONNX graph.
pub struct GraphBuilder {
    pub graph: GraphProto,
    next: usize,
}

impl GraphBuilder {
    pub fn new(name: &str) -> Self {
        Self {
            graph: GraphProto {
                name: name.into(),
                ..GraphProto::default()
            },
            next: 0,
        }
    }

    /// Declares a graph input.
    pub fn input(&mut self, name: &str, elem: DataType, dims: Vec<Dim>, doc: &str) -> String {
        self.graph.inputs.push(ValueInfo {
            name: name.into(),
            elem,
            dims,
            doc: doc.into(),
        });
        name.into()
    }

    /// Exposes `value` as the graph output `name` (through an Identity node).
    pub fn output(&mut self, value: &str, name: &str, dims: Vec<Dim>, doc: &str) {
        self.node("Identity", &[value], vec![], name);
        self.graph.outputs.push(ValueInfo {
            name: name.into(),
            elem: DataType::Float,
            dims,
            doc: doc.into(),
        });
    }

    /// A named f32 initialiser (weights keep their checkpoint names).
    pub fn weight(&mut self, name: &str, dims: &[usize], data: &[f32]) -> String {
        self.graph
            .initializers
            .push(TensorProto::f32(name, dims, data));
        name.into()
    }

    fn fresh(&mut self, stem: &str) -> String {
        self.next += 1;
        format!("{stem}_{}", self.next)
    }

    /// An anonymous f32 constant.
    pub fn const_f32(&mut self, dims: &[usize], data: &[f32]) -> String {
        let n = self.fresh("const");
        self.weight(&n, dims, data)
    }

    /// An anonymous int64 constant.
    pub fn const_i64(&mut self, dims: &[usize], data: &[i64]) -> String {
        let n = self.fresh("const");
        self.graph
            .initializers
            .push(TensorProto::i64(&n, dims, data));
        n
    }

    /// A scalar f32 constant.
    pub fn scalar(&mut self, v: f32) -> String {
        self.const_f32(&[], &[v])
    }

    fn node(&mut self, op: &str, inputs: &[&str], attrs: Vec<(&str, Attr)>, out: &str) {
        let name = self.fresh(&format!("{op}_node"));
        self.graph.nodes.push(NodeProto {
            name,
            op_type: op.into(),
            inputs: inputs.iter().map(|s| s.to_string()).collect(),
            outputs: vec![out.into()],
            attrs: attrs.into_iter().map(|(k, v)| (k.into(), v)).collect(),
        });
    }

    /// Adds a single-output node and returns its output's name.
    pub fn op(&mut self, op: &str, inputs: &[&str], attrs: Vec<(&str, Attr)>) -> String {
        let out = self.fresh(op);
        self.node(op, inputs, attrs, &out);
        out
    }

    pub fn add(&mut self, a: &str, b: &str) -> String {
        self.op("Add", &[a, b], vec![])
    }
    pub fn mul(&mut self, a: &str, b: &str) -> String {
        self.op("Mul", &[a, b], vec![])
    }

    /// `y = x Wᵀ + b` for `W [out, in]` given row-major as in the checkpoint: stored
    /// transposed as `{name}.weight` `[in, out]` so the graph is a plain MatMul.
    pub fn linear(
        &mut self,
        x: &str,
        name: &str,
        w: &[f32],
        d_in: usize,
        d_out: usize,
        b: Option<&[f32]>,
    ) -> String {
        let mut wt = vec![0f32; w.len()];
        for o in 0..d_out {
            for i in 0..d_in {
                wt[i * d_out + o] = w[o * d_in + i];
            }
        }
        let wt = self.weight(&format!("{name}.weight"), &[d_in, d_out], &wt);
        let y = self.op("MatMul", &[x, &wt], vec![]);
        match b {
            Some(b) => {
                let b = self.weight(&format!("{name}.bias"), &[d_out], b);
                self.add(&y, &b)
            }
            None => y,
        }
    }

    /// LayerNormalization over the last axis (opset 17).
    pub fn layer_norm(&mut self, x: &str, name: &str, w: &[f32], b: &[f32], eps: f32) -> String {
        let d = w.len();
        let w = self.weight(&format!("{name}.weight"), &[d], w);
        let b = self.weight(&format!("{name}.bias"), &[d], b);
        self.op(
            "LayerNormalization",
            &[x, &w, &b],
            vec![("axis", Attr::Int(-1)), ("epsilon", Attr::Float(eps))],
        )
    }

    /// Exact GELU: `0.5 x (1 + erf(x / √2))` (Gelu is only an operator from opset 20).
    pub fn gelu(&mut self, x: &str) -> String {
        let r = self.scalar(std::f32::consts::FRAC_1_SQRT_2);
        let half = self.scalar(0.5);
        let one = self.scalar(1.0);
        let xs = self.mul(x, &r);
        let e = self.op("Erf", &[&xs], vec![]);
        let e1 = self.add(&e, &one);
        let hx = self.mul(x, &half);
        self.mul(&hx, &e1)
    }

    /// Multi-head self-attention on packed `qkv [B,T,3D]` (q, k, v each head-major) with an
    /// additive key bias `bias [B,1,1,T]`: returns `[B,T,D]` before the output projection.
    pub fn attention(&mut self, qkv: &str, bias: &str, dim: usize, heads: usize) -> String {
        let dh = dim / heads;
        let shape = self.const_i64(&[5], &[0, 0, 3, heads as i64, dh as i64]);
        let r = self.op("Reshape", &[qkv, &shape], vec![]);
        let t = self.op(
            "Transpose",
            &[&r],
            vec![("perm", Attr::Ints(vec![2, 0, 3, 1, 4]))],
        );
        let part = |g: &mut Self, i: i64| {
            let idx = g.const_i64(&[], &[i]);
            g.op("Gather", &[&t, &idx], vec![("axis", Attr::Int(0))])
        };
        let (q, k, v) = (part(self, 0), part(self, 1), part(self, 2));
        let kt = self.op(
            "Transpose",
            &[&k],
            vec![("perm", Attr::Ints(vec![0, 1, 3, 2]))],
        );
        let s = self.op("MatMul", &[&q, &kt], vec![]);
        let scale = self.scalar(1.0 / (dh as f32).sqrt());
        let s = self.mul(&s, &scale);
        let s = self.add(&s, bias);
        let p = self.op("Softmax", &[&s], vec![("axis", Attr::Int(-1))]);
        let o = self.op("MatMul", &[&p, &v], vec![]);
        let o = self.op(
            "Transpose",
            &[&o],
            vec![("perm", Attr::Ints(vec![0, 2, 1, 3]))],
        );
        let shape = self.const_i64(&[3], &[0, 0, dim as i64]);
        self.op("Reshape", &[&o, &shape], vec![])
    }

    /// Fourier coordinate encoding: `coords [B,N,K]` → `[B,N,D]` = `[sin(cW), cos(cW), 0…]`
    /// for the block-diagonal frequency matrix `w [K, F]` (F = K·freqs per axis).
    pub fn fourier(&mut self, coords: &str, w: &[f32], k: usize, f: usize, dim: usize) -> String {
        let w = self.weight("encoder.coord_frequencies", &[k, f], w);
        let ang = self.op("MatMul", &[coords, &w], vec![]);
        let s = self.op("Sin", &[&ang], vec![]);
        let c = self.op("Cos", &[&ang], vec![]);
        let sc = self.op("Concat", &[&s, &c], vec![("axis", Attr::Int(-1))]);
        if 2 * f == dim {
            return sc;
        }
        let pads = self.const_i64(&[6], &[0, 0, 0, 0, 0, (dim - 2 * f) as i64]);
        self.op("Pad", &[&sc, &pads], vec![])
    }

    /// Mean over real tokens: `x [B,N,D]`, `padding [B,N]` (1 = filler) → `[B,D]`.
    pub fn masked_mean(&mut self, x: &str, padding: &str) -> String {
        let one = self.scalar(1.0);
        let keep = self.op("Sub", &[&one, padding], vec![]);
        let axes_last = self.const_i64(&[1], &[-1]);
        let keep3 = self.op("Unsqueeze", &[&keep, &axes_last], vec![]);
        let xm = self.mul(x, &keep3);
        let axes1 = self.const_i64(&[1], &[1]);
        let sum = self.op(
            "ReduceSum",
            &[&xm, &axes1],
            vec![("keepdims", Attr::Int(0))],
        );
        let cnt = self.op(
            "ReduceSum",
            &[&keep, &axes1],
            vec![("keepdims", Attr::Int(1))],
        );
        let cnt = self.op("Max", &[&cnt, &one], vec![]);
        self.op("Div", &[&sum, &cnt], vec![])
    }

    /// One dimension of a value's shape as a 1-element int64 tensor.
    pub fn dim_of(&mut self, x: &str, axis: i64) -> String {
        let shape = self.op("Shape", &[x], vec![]);
        let idx = self.const_i64(&[1], &[axis]);
        self.op("Gather", &[&shape, &idx], vec![("axis", Attr::Int(0))])
    }

    /// Concatenates 1-D int64 tensors (shape vectors).
    pub fn concat_shape(&mut self, parts: &[&str]) -> String {
        self.op("Concat", parts, vec![("axis", Attr::Int(0))])
    }
}
