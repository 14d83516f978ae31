//! The shared encoder as an ONNX graph: token embedding, Fourier coordinate encoding (in
//! the graph, so any token count and spacing work without re-export), CLS and register
//! tokens, pre-norm blocks with padding-masked attention, final norm and pooling.

use crate::builder::GraphBuilder;
use crate::proto::Attr;
use crate::{ExportError, Result};
use candle_core::Tensor;
use tessera_core::layers::{Block, LayerNorm, Linear};
use tessera_core::{Encoder, PatchEmbed};

fn host(t: &Tensor) -> Result<Vec<f32>> {
    Ok(t.flatten_all()?.to_vec1::<f32>()?)
}

fn linear(g: &mut GraphBuilder, x: &str, name: &str, l: &Linear) -> Result<String> {
    let (d_out, d_in) = l.weight.dims2()?;
    let b = l.bias.as_ref().map(host).transpose()?;
    Ok(g.linear(x, name, &host(&l.weight)?, d_in, d_out, b.as_deref()))
}

/// The token embedder: `values [B,N,P]` → `[B,N,D]`.
fn patch_embed(g: &mut GraphBuilder, values: &str, e: &PatchEmbed) -> Result<String> {
    let pn = match e {
        PatchEmbed::Linear(l) => return linear(g, values, "encoder.patch_embed.proj", l),
        PatchEmbed::PointNet(pn) => pn,
    };
    // [B,N,P] → [B,N,k,F]; shared MLPs act on the last axis, maxima over the members.
    let f = pn.first[0].weight.dim(1)?;
    let shape = g.const_i64(&[4], &[0, 0, pn.points as i64, f as i64]);
    let x = g.op("Reshape", &[values, &shape], vec![]);
    let p = "encoder.patch_embed";
    let h = linear(g, &x, &format!("{p}.first.0"), &pn.first[0])?;
    let h = g.gelu(&h);
    let h = linear(g, &h, &format!("{p}.first.1"), &pn.first[1])?;
    let max = g.op(
        "ReduceMax",
        &[&h],
        vec![("axes", Attr::Ints(vec![2])), ("keepdims", Attr::Int(1))],
    );
    let hs = g.op("Shape", &[&h], vec![]);
    let max = g.op("Expand", &[&max, &hs], vec![]);
    let h = g.op("Concat", &[&h, &max], vec![("axis", Attr::Int(-1))]);
    let h = linear(g, &h, &format!("{p}.second.0"), &pn.second[0])?;
    let h = g.gelu(&h);
    let h = linear(g, &h, &format!("{p}.second.1"), &pn.second[1])?;
    Ok(g.op(
        "ReduceMax",
        &[&h],
        vec![("axes", Attr::Ints(vec![2])), ("keepdims", Attr::Int(0))],
    ))
}

fn norm(g: &mut GraphBuilder, x: &str, name: &str, n: &LayerNorm) -> Result<String> {
    Ok(g.layer_norm(x, name, &host(&n.weight)?, &host(&n.bias)?, n.eps))
}

fn block(g: &mut GraphBuilder, x: &str, p: &str, b: &Block, bias: &str) -> Result<String> {
    let dim = b.norm1.weight.dim(0)?;
    let scale =
        |g: &mut GraphBuilder, y: String, ls: &Option<Tensor>, name: &str| -> Result<String> {
            Ok(match ls {
                Some(gamma) => {
                    let w = g.weight(&format!("{p}.{name}.gamma"), &[dim], &host(gamma)?);
                    g.mul(&y, &w)
                }
                None => y,
            })
        };
    let h = norm(g, x, &format!("{p}.norm1"), &b.norm1)?;
    let qkv = linear(g, &h, &format!("{p}.attn.qkv"), &b.attn.qkv)?;
    let a = g.attention(&qkv, bias, dim, b.attn.heads);
    let a = linear(g, &a, &format!("{p}.attn.proj"), &b.attn.proj)?;
    let a = scale(g, a, &b.ls1, "ls1")?;
    let x = g.add(x, &a);
    let h = norm(g, &x, &format!("{p}.norm2"), &b.norm2)?;
    let h = linear(g, &h, &format!("{p}.mlp.fc1"), &b.mlp.fc1)?;
    let h = g.gelu(&h);
    let h = linear(g, &h, &format!("{p}.mlp.fc2"), &b.mlp.fc2)?;
    let h = scale(g, h, &b.ls2, "ls2")?;
    Ok(g.add(&x, &h))
}

/// Graph values of the encoder's three outputs.
pub struct EncoderValues {
    pub cls: String,
    pub patches: String,
    pub embedding: String,
}

/// Appends the encoder to `g`: `values [B,N,P]`, `coords [B,N,K]`, `padding [B,N]` →
/// `cls [B,D]`, `patches [B,N,D]`, `embedding [B,2D]` (CLS ‖ mean of real patches).
pub fn encoder_graph(
    g: &mut GraphBuilder,
    enc: &Encoder,
    values: &str,
    coords: &str,
    padding: &str,
) -> Result<EncoderValues> {
    let cfg = &enc.cfg;
    let d = cfg.dim;
    let r = cfg.registers;
    if enc.blocks.iter().any(|b| b.attn.heads != cfg.heads) {
        return Err(ExportError::Unsupported(
            "blocks with differing head counts".into(),
        ));
    }
    // Token embedding plus coordinate code.
    let x = patch_embed(g, values, &enc.patch_embed)?;
    let (k, kf) = enc.coord_enc.w.dims2()?;
    let mut c = g.fourier(coords, &host(&enc.coord_enc.w)?, k, kf, d);
    if let Some(proj) = &enc.coord_proj {
        c = linear(g, &c, "encoder.coord_embed.proj", proj)?;
    }
    let x = g.add(&x, &c);
    // Prefix tokens [1, 1+R, D] broadcast to the batch.
    let mut prefix = host(&enc.cls_token)?;
    if let Some(reg) = &enc.reg_token {
        prefix.extend(host(reg)?);
    }
    let prefix = g.weight("encoder.prefix_tokens", &[1, 1 + r, d], &prefix);
    let b = g.dim_of(values, 0);
    let ones = g.const_i64(&[2], &[1, 1]);
    let shape = g.concat_shape(&[&b, &ones]);
    let prefix = g.op("Expand", &[&prefix, &shape], vec![]);
    let mut x = g.op("Concat", &[&prefix, &x], vec![("axis", Attr::Int(1))]);
    // Additive key bias [B,1,1,1+R+N]: 0 for prefix and real tokens, -1e9 for filler.
    let pads = g.const_i64(&[4], &[0, (1 + r) as i64, 0, 0]);
    let full = g.op("Pad", &[padding, &pads], vec![]);
    let big = g.scalar(-1e9);
    let bias = g.mul(&full, &big);
    let axes = g.const_i64(&[2], &[1, 2]);
    let bias = g.op("Unsqueeze", &[&bias, &axes], vec![]);
    for (i, blk) in enc.blocks.iter().enumerate() {
        x = block(g, &x, &format!("encoder.blocks.{i}"), blk, &bias)?;
    }
    let x = norm(g, &x, "encoder.norm", &enc.norm)?;
    let zero = g.const_i64(&[], &[0]);
    let cls = g.op("Gather", &[&x, &zero], vec![("axis", Attr::Int(1))]);
    let starts = g.const_i64(&[1], &[(1 + r) as i64]);
    let ends = g.const_i64(&[1], &[i64::MAX]);
    let axis1 = g.const_i64(&[1], &[1]);
    let patches = g.op("Slice", &[&x, &starts, &ends, &axis1], vec![]);
    let mean = g.masked_mean(&patches, padding);
    let embedding = g.op("Concat", &[&cls, &mean], vec![("axis", Attr::Int(-1))]);
    Ok(EncoderValues {
        cls,
        patches,
        embedding,
    })
}
