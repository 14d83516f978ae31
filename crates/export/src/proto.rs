//! The subset of the ONNX protobuf schema (`onnx.proto`, IR version 8) that Tessera writes,
//! encoded by hand: a model is a few nested messages of strings, varints and raw tensor
//! bytes, so a 150-line writer replaces a protobuf compiler and a generated schema.
//!
//! Field numbers follow `onnx/onnx.proto`. Repeated scalars are written unpacked, which
//! every protobuf parser accepts for proto2 fields.

/// ONNX `TensorProto.DataType` values used here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataType {
    Float = 1,
    Int64 = 7,
}

/// Protobuf wire-format writer.
#[derive(Default)]
struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.buf.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.buf.push(v as u8);
    }
    fn key(&mut self, field: u32, wire: u8) {
        self.varint(((field as u64) << 3) | wire as u64);
    }
    fn int(&mut self, field: u32, v: i64) {
        self.key(field, 0);
        self.varint(v as u64);
    }
    fn float(&mut self, field: u32, v: f32) {
        self.key(field, 5);
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    fn bytes(&mut self, field: u32, b: &[u8]) {
        self.key(field, 2);
        self.varint(b.len() as u64);
        self.buf.extend_from_slice(b);
    }
    fn str(&mut self, field: u32, s: &str) {
        self.bytes(field, s.as_bytes());
    }
    fn msg(&mut self, field: u32, m: &impl Encode) {
        let mut w = Writer::default();
        m.encode(&mut w);
        self.bytes(field, &w.buf);
    }
}

trait Encode {
    fn encode(&self, w: &mut Writer);
}

/// `TensorProto` with `raw_data` (little-endian).
#[derive(Debug, Clone)]
pub struct TensorProto {
    pub name: String,
    pub dims: Vec<i64>,
    pub data_type: DataType,
    pub raw: Vec<u8>,
}

impl TensorProto {
    pub fn f32(name: &str, dims: &[usize], data: &[f32]) -> Self {
        Self {
            name: name.into(),
            dims: dims.iter().map(|&d| d as i64).collect(),
            data_type: DataType::Float,
            raw: data.iter().flat_map(|v| v.to_le_bytes()).collect(),
        }
    }
    pub fn i64(name: &str, dims: &[usize], data: &[i64]) -> Self {
        Self {
            name: name.into(),
            dims: dims.iter().map(|&d| d as i64).collect(),
            data_type: DataType::Int64,
            raw: data.iter().flat_map(|v| v.to_le_bytes()).collect(),
        }
    }
}

impl Encode for TensorProto {
    fn encode(&self, w: &mut Writer) {
        for &d in &self.dims {
            w.int(1, d);
        }
        w.int(2, self.data_type as i64);
        w.str(8, &self.name);
        w.bytes(9, &self.raw);
    }
}

/// A node attribute (`AttributeProto`).
#[derive(Debug, Clone)]
pub enum Attr {
    Float(f32),
    Int(i64),
    Ints(Vec<i64>),
    Tensor(TensorProto),
}

impl Attr {
    fn encode_named(&self, name: &str, w: &mut Writer) {
        w.str(1, name);
        match self {
            Attr::Float(f) => {
                w.float(2, *f);
                w.int(20, 1);
            }
            Attr::Int(i) => {
                w.int(3, *i);
                w.int(20, 2);
            }
            Attr::Tensor(t) => {
                w.msg(5, t);
                w.int(20, 4);
            }
            Attr::Ints(v) => {
                for &i in v {
                    w.int(8, i);
                }
                w.int(20, 7);
            }
        }
    }
}

struct NamedAttr<'a>(&'a str, &'a Attr);

impl Encode for NamedAttr<'_> {
    fn encode(&self, w: &mut Writer) {
        self.1.encode_named(self.0, w);
    }
}

/// `NodeProto` (default ONNX domain).
#[derive(Debug, Clone)]
pub struct NodeProto {
    pub name: String,
    pub op_type: String,
    pub inputs: Vec<String>,
    pub outputs: Vec<String>,
    pub attrs: Vec<(String, Attr)>,
}

impl Encode for NodeProto {
    fn encode(&self, w: &mut Writer) {
        for i in &self.inputs {
            w.str(1, i);
        }
        for o in &self.outputs {
            w.str(2, o);
        }
        w.str(3, &self.name);
        w.str(4, &self.op_type);
        for (n, a) in &self.attrs {
            w.msg(5, &NamedAttr(n, a));
        }
    }
}

/// One dimension of a graph input or output: fixed or named (dynamic).
#[derive(Debug, Clone, PartialEq)]
pub enum Dim {
    Fixed(usize),
    Named(String),
}

/// `ValueInfoProto` of a tensor.
#[derive(Debug, Clone)]
pub struct ValueInfo {
    pub name: String,
    pub elem: DataType,
    pub dims: Vec<Dim>,
    pub doc: String,
}

struct Shape<'a>(&'a [Dim]);
struct DimProto<'a>(&'a Dim);
struct TensorType<'a>(&'a ValueInfo);
struct TypeProto<'a>(&'a ValueInfo);

impl Encode for DimProto<'_> {
    fn encode(&self, w: &mut Writer) {
        match self.0 {
            Dim::Fixed(v) => w.int(1, *v as i64),
            Dim::Named(s) => w.str(2, s),
        }
    }
}
impl Encode for Shape<'_> {
    fn encode(&self, w: &mut Writer) {
        for d in self.0 {
            w.msg(1, &DimProto(d));
        }
    }
}
impl Encode for TensorType<'_> {
    fn encode(&self, w: &mut Writer) {
        w.int(1, self.0.elem as i64);
        w.msg(2, &Shape(&self.0.dims));
    }
}
impl Encode for TypeProto<'_> {
    fn encode(&self, w: &mut Writer) {
        w.msg(1, &TensorType(self.0));
    }
}
impl Encode for ValueInfo {
    fn encode(&self, w: &mut Writer) {
        w.str(1, &self.name);
        w.msg(2, &TypeProto(self));
        if !self.doc.is_empty() {
            w.str(3, &self.doc);
        }
    }
}

/// `GraphProto`.
#[derive(Debug, Clone, Default)]
pub struct GraphProto {
    pub name: String,
    pub nodes: Vec<NodeProto>,
    pub initializers: Vec<TensorProto>,
    pub inputs: Vec<ValueInfo>,
    pub outputs: Vec<ValueInfo>,
    pub doc: String,
}

impl Encode for GraphProto {
    fn encode(&self, w: &mut Writer) {
        for n in &self.nodes {
            w.msg(1, n);
        }
        w.str(2, &self.name);
        for t in &self.initializers {
            w.msg(5, t);
        }
        if !self.doc.is_empty() {
            w.str(10, &self.doc);
        }
        for i in &self.inputs {
            w.msg(11, i);
        }
        for o in &self.outputs {
            w.msg(12, o);
        }
    }
}

struct OpsetId(i64);
impl Encode for OpsetId {
    fn encode(&self, w: &mut Writer) {
        w.str(1, "");
        w.int(2, self.0);
    }
}
struct Entry<'a>(&'a str, &'a str);
impl Encode for Entry<'_> {
    fn encode(&self, w: &mut Writer) {
        w.str(1, self.0);
        w.str(2, self.1);
    }
}

/// ONNX IR version written (8 pairs with opset 17; ONNX Runtime 1.31 reads up to 13).
pub const IR_VERSION: i64 = 8;
/// Default-domain opset written.
pub const OPSET: i64 = 17;

/// `ModelProto`.
#[derive(Debug, Clone)]
pub struct ModelProto {
    pub producer_version: String,
    pub doc: String,
    pub graph: GraphProto,
    pub metadata: Vec<(String, String)>,
}

impl Encode for ModelProto {
    fn encode(&self, w: &mut Writer) {
        w.int(1, IR_VERSION);
        w.str(2, "tessera");
        w.str(3, &self.producer_version);
        w.str(4, "org.tessera");
        w.int(5, 1);
        if !self.doc.is_empty() {
            w.str(6, &self.doc);
        }
        w.msg(7, &self.graph);
        w.msg(8, &OpsetId(OPSET));
        for (k, v) in &self.metadata {
            w.msg(14, &Entry(k, v));
        }
    }
}

impl ModelProto {
    /// The serialised model.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::default();
        self.encode(&mut w);
        w.buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_match_the_protobuf_encoding() {
        let mut w = Writer::default();
        w.varint(1);
        w.varint(300);
        w.int(1, -1);
        assert_eq!(
            w.buf,
            [1, 0xac, 0x02, 0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]
        );
    }
}
