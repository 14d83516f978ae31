#!/usr/bin/env python3
"""Generate the compressed-audio fixtures and golden values for tessera-audio
(domains/audio/tests/codecs/).

Writers and references: soundfile (libsndfile 1.2: FLAC, AIFF, CAF, Ogg Vorbis, MP3 via
LAME/mpg123) and PyAV (FFmpeg: AAC and ALAC in M4A, MP3 at 44.1 kHz stereo, Opus in Ogg and WebM). Lossless
files must decode to exactly the int16/int24 samples they were written from; lossy files
are compared with the reference decoder's output (soundfile for Vorbis/MP3, FFmpeg for
AAC). Made with soundfile 0.13 (libsndfile 1.2.2), PyAV 18.1, numpy 2.4:

    benchmarks/.venv/bin/pip install soundfile av numpy
    benchmarks/.venv/bin/python scripts/golden_codecs.py
"""

import json
import os

import av
import numpy as np
import soundfile as sf

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "domains", "audio", "tests", "codecs")
RNG = np.random.default_rng(20263)


def signal(rate, channels, seconds):
    """Tones with a glide and a little noise, peak ~0.7: what a codec meets in speech/music."""
    t = np.arange(int(rate * seconds)) / rate
    chans = []
    for c in range(channels):
        f0 = 220.0 * (c + 1)
        x = 0.3 * np.sin(2 * np.pi * f0 * t) + 0.2 * np.sin(2 * np.pi * (600 + 900 * t) * t + c)
        x += 0.02 * RNG.standard_normal(t.size)
        chans.append(x * np.minimum(1.0, 20 * t))  # fade in
    return np.stack(chans, axis=1)


def ints(x, bits):
    scale = 2 ** (bits - 1)
    return np.clip(np.round(x * scale), -scale, scale - 1).astype(np.int32)


LAYOUTS = {1: "mono", 2: "stereo", 6: "5.1"}


def pyav_write(path, x_int16, rate, codec, fmt):
    layout = LAYOUTS[x_int16.shape[1]]
    with av.open(path, "w", format=fmt) as out:
        st = out.add_stream(codec, rate=rate, layout=layout)
        frame = av.AudioFrame.from_ndarray(
            x_int16.astype(np.int16).reshape(1, -1),  # packed: interleaved frames
            format="s16",
            layout=layout,
        )
        frame.sample_rate = rate
        for p in st.encode(frame):
            out.mux(p)
        for p in st.encode(None):
            out.mux(p)


def pyav_read(path):
    with av.open(path) as f:
        chunks = [fr.to_ndarray() for fr in f.decode(audio=0)]
        st = f.streams.audio[0]
        rate, channels = st.rate, st.channels
    # Planar float (fltp) gives [channels, n]; packed gives [1, n * channels].
    data = np.concatenate(chunks, axis=1)
    if data.shape[0] == channels and channels > 1 or data.shape[0] == 1 and channels == 1:
        data = data.T
    else:
        data = data.reshape(-1, channels)
    if data.dtype.kind == "i":
        data = data / 32768.0
    return data.astype(np.float32), rate


def libopus_read(path):
    """Decode with FFmpeg's libopus wrapper (int16 out: the reference decoder's own
    rounding), not FFmpeg's native Opus decoder, which differs from libopus by ~60 dB SNR
    in stereo."""
    with av.open(path) as f:
        st = f.streams.audio[0]
        ctx = av.codec.CodecContext.create("libopus", "r")
        ctx.extradata = st.codec_context.extradata
        chunks = [fr.to_ndarray() for p in f.demux(st) if p.size for fr in ctx.decode(p)]
        channels = st.channels
    data = np.concatenate(chunks, axis=1).reshape(-1, channels)
    return (data / 32768.0).astype(np.float32), 48000


def main():
    os.makedirs(OUT, exist_ok=True)
    for f in os.listdir(OUT):
        if os.path.isfile(os.path.join(OUT, f)):
            os.remove(os.path.join(OUT, f))
    files = {}

    def p(name):
        return os.path.join(OUT, name)

    def reference(name, values, rate, exact):
        """Interleaved float32 little-endian samples in `<name>.f32`, metadata in JSON."""
        values.astype("<f4").tofile(p(name + ".f32"))
        files[name] = {
            "rate": rate,
            "channels": values.shape[1],
            "frames": values.shape[0],
            "exact": exact,
        }

    def lossless(name, pcm, bits, rate):
        reference(name, (pcm / 2 ** (bits - 1)).astype(np.float32), rate, True)

    def lossy(name, ref, rate):
        reference(name, ref.astype(np.float32), rate, False)


    # Lossless: FLAC 16/24-bit, AIFF, CAF, ALAC.
    x = signal(16000, 1, 0.15)
    pcm16 = ints(x, 16)
    sf.write(p("mono16.flac"), pcm16.astype(np.int16), 16000, subtype="PCM_16")
    lossless("mono16.flac", pcm16, 16, 16000)
    x = signal(22050, 2, 0.1)
    pcm24 = ints(x, 24)
    sf.write(p("stereo24.flac"), pcm24 << 8, 22050, subtype="PCM_24")
    lossless("stereo24.flac", pcm24, 24, 22050)
    pcm16s = ints(x, 16)
    sf.write(p("stereo16.aiff"), pcm16s.astype(np.int16), 22050, format="AIFF", subtype="PCM_16")
    lossless("stereo16.aiff", pcm16s, 16, 22050)
    sf.write(p("mono16.caf"), pcm16.astype(np.int16), 16000, format="CAF", subtype="PCM_16")
    lossless("mono16.caf", pcm16, 16, 16000)
    pyav_write(p("stereo16_alac.m4a"), pcm16s, 22050, "alac", "mp4")
    lossless("stereo16_alac.m4a", pcm16s, 16, 22050)

    # Lossy: Vorbis and MP3 (libsndfile), AAC and MP3 (FFmpeg).
    sf.write(p("mono_vorbis.ogg"), x[:, 0], 22050, format="OGG", subtype="VORBIS")
    ref, _ = sf.read(p("mono_vorbis.ogg"), dtype="float32", always_2d=True)
    lossy("mono_vorbis.ogg", ref, 22050)
    xs = signal(44100, 2, 0.1)
    sf.write(p("stereo_sndfile.mp3"), xs, 44100, format="MP3", subtype="MPEG_LAYER_III")
    ref, _ = sf.read(p("stereo_sndfile.mp3"), dtype="float32", always_2d=True)
    lossy("stereo_sndfile.mp3", ref, 44100)
    pyav_write(p("stereo_aac.m4a"), ints(xs, 16), 44100, "aac", "mp4")
    ref, rate = pyav_read(p("stereo_aac.m4a"))
    lossy("stereo_aac.m4a", ref, rate)
    pyav_write(p("mono_lame.mp3"), ints(signal(16000, 1, 0.2), 16), 16000, "libmp3lame", "mp3")
    ref, rate = pyav_read(p("mono_lame.mp3"))
    lossy("mono_lame.mp3", ref, rate)

    # Opus (libopus through FFmpeg, both ways: the reference is libopus's int16 output):
    # Ogg mono and stereo, 5.1 (mapping family 1, multistream), WebM.
    for name, channels, fmt in [
        ("mono.opus", 1, "ogg"),
        ("stereo.opus", 2, "ogg"),
        ("surround51.opus", 6, "ogg"),
        ("stereo_opus.webm", 2, "webm"),
    ]:
        pyav_write(p(name), ints(signal(48000, channels, 0.1), 16), 48000, "libopus", fmt)
        ref, rate = libopus_read(p(name))
        lossy(name, ref, rate)

    # Longer files for window reads that seek (no reference: a window must equal the same
    # span of the file's whole decode), in tests/codecs/long/.
    os.makedirs(p("long"), exist_ok=True)
    x = signal(16000, 1, 4.0)
    pcm16 = ints(x, 16)
    sf.write(p("long/speech.flac"), pcm16.astype(np.int16), 16000, subtype="PCM_16")
    sf.write(p("long/speech.ogg"), x[:, 0], 16000, format="OGG", subtype="VORBIS")
    pyav_write(p("long/speech.mp3"), pcm16, 16000, "libmp3lame", "mp3")
    pyav_write(p("long/speech.m4a"), pcm16, 16000, "aac", "mp4")
    pyav_write(p("long/speech.opus"), pcm16, 16000, "libopus", "ogg")

    with open(p("expected.json"), "w") as f:
        json.dump({"files": files}, f)
    print(len(files), "files")


if __name__ == "__main__":
    main()
