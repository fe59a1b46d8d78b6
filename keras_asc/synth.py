"""A generated dataset in exactly the TAU Urban Acoustic Scenes 2020 (or 2022) Mobile layout.

It exists so every stage runs on a machine without the 30 GB of real audio. It is NOT a
substitute for TAU: figures measured on it say the pipeline works, not how well a model
classifies real scenes.

How a clip is made: each scene is a recipe of sound sources (traffic rumble, crowd babble,
birds, rail squeal, announcements, engine drones, footsteps, music, ...), each drawn with a
probability and mixed at a random level and position over a background of coloured noise, then
passed through the recording location's room (reverb time and hum fixed per location). That
clip is "device A". Other devices are the same clip through a fixed device simulation: an
impulse response, an EQ curve, dynamic range compression and a noise floor, different for each
of b, c and s1-s6. As in TAU, s4-s6 occur only in the evaluate split and every recording
location belongs to exactly one split.

One-second clips (``clip_seconds=1``) are written in the TAU 2022 layout
(:func:`keras_asc.layouts.layout_for_clip_seconds`): each recording segment is rendered
``parts_per_segment`` seconds long, through each device, and cut into one-second parts named
``<scene>-<city>-<location>-<segment>-<part>-<device>.wav``; the DCASE 2024 training subsets
``split_setup/split{5,10,25,50,100}.csv`` list whole segments of fold1_train, nested, with every
scene in each (at least one segment per scene, else about that percent of its train segments).

Determinism: every segment draws from its own ``numpy.random.SeedSequence`` built from the
dataset seed and the segment's indices, so the bytes do not depend on the number of workers.
"""
from __future__ import annotations

import dataclasses
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.signal
import soundfile as sf

from keras_asc import artifacts
from keras_asc.augment import write_simulated_irs
from keras_asc.dataset import DEVICES, SCENE_LABELS, UNSEEN_DEVICES
from keras_asc.layouts import LAYOUTS, TRAIN_SPLITS, Layout, layout_for_clip_seconds
from keras_asc.parallel import DEFAULT_WORKERS, parallel_map

SR = 44100
CITIES = ("amsterdam", "barcelona", "helsinki", "lisbon", "london", "lyon", "madrid", "milan",
          "prague", "paris", "stockholm", "vienna")
TRAIN_EXTRA_DEVICES = ("b", "c", "s1", "s2", "s3")
EVAL_EXTRA_DEVICES = tuple(d for d in DEVICES if d != "a")


@dataclasses.dataclass(frozen=True)
class SynthSize:
    segments_per_scene: int
    clip_seconds: float
    eval_extra_devices_per_segment: int = 3
    parts_per_segment: int = 10  # one-second parts of a segment (TAU 2022 layout only)

    @property
    def layout(self) -> Layout:
        return layout_for_clip_seconds(self.clip_seconds)


SIZES = {
    "tiny": SynthSize(segments_per_scene=6, clip_seconds=2.0),
    "demo": SynthSize(segments_per_scene=18, clip_seconds=10.0),
}


def resolve_size(size: str, clip_seconds: float | None = None) -> SynthSize:
    """``tiny``, ``demo`` or a number of recorded segments per scene (10 s clips)."""
    if size in SIZES:
        base = SIZES[size]
    else:
        try:
            n = int(size)
        except ValueError:
            raise ValueError(f"--size must be tiny, demo or a whole number, got {size!r}") from None
        if n < 3:
            raise ValueError("--size N needs at least 3 segments per scene (train and evaluate locations)")
        base = SynthSize(segments_per_scene=n, clip_seconds=10.0)
    if clip_seconds is not None:
        base = dataclasses.replace(base, clip_seconds=float(clip_seconds))
    return base


# ----------------------------------------------------------------------------- sources
def _shaped_noise(rng, n, gain_fn) -> np.ndarray:
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1 / SR)
    y = np.fft.irfft(spec * gain_fn(np.maximum(f, 1.0)), n)
    return _unit(y)


def _unit(y: np.ndarray) -> np.ndarray:
    return (y / (np.sqrt(np.mean(y ** 2)) + 1e-12)).astype(np.float32)


def _band(lo, hi, slope_db_oct=0.0):
    def g(f):
        shape = (f / 1000.0) ** (slope_db_oct / 6.02)
        return shape / np.sqrt(1 + (lo / f) ** 4) / np.sqrt(1 + (f / hi) ** 4)
    return g


def _envelope(rng, n, rate_hz, depth=1.0, smooth=0.3):
    """Random on/off gating at about ``rate_hz`` events per second, smoothed."""
    k = max(2, int(n / SR * rate_hz) + 2)
    pts = (rng.random(k) < 0.6).astype(float) * (1 - depth) + depth * rng.random(k)
    pts = np.maximum(pts, 1 - depth)
    x = np.interp(np.linspace(0, k - 1, n), np.arange(k), pts)
    w = min(n, max(1, int(SR / rate_hz * smooth)))
    return _moving_average(x, w)


def _moving_average(x: np.ndarray, w: int) -> np.ndarray:
    """Centred box filter of width ``w`` in O(n) (a direct convolution is O(n*w))."""
    c = np.concatenate([[0.0], np.cumsum(np.pad(x, (w // 2, w - 1 - w // 2), mode="edge"))])
    return (c[w:] - c[:-w]) / w


def _tone(f_inst, n):
    return np.sin(2 * np.pi * np.cumsum(f_inst) / SR)


def _events(rng, n, rate_hz, make, max_len):
    """Place events made by ``make(rng)`` (arrays shorter than ``max_len``) at random times."""
    y = np.zeros(n + max_len)
    count = rng.poisson(rate_hz * n / SR) + 1
    for _ in range(count):
        ev = make(rng)
        t = rng.integers(0, n)
        y[t:t + len(ev)] += ev * rng.uniform(0.4, 1.0)
    return y[:n]


def src_rumble(rng, n):  # traffic / road rumble: brown-ish low noise with slow swells
    y = _shaped_noise(rng, n, _band(20, 900, -6))
    return y * _envelope(rng, n, 0.4, depth=0.6, smooth=1.0)


def src_babble(rng, n):  # crowd babble: formant-shaped noise, syllabic modulation
    y = np.zeros(n)
    for _ in range(rng.integers(3, 8)):
        f1 = rng.uniform(300, 900)
        v = _shaped_noise(rng, n, lambda f, f1=f1: _band(150, 3500)(f) * (1 + 3 * np.exp(-((f - f1) / 200) ** 2)))
        y += v * _envelope(rng, n, rng.uniform(3, 6), depth=0.9, smooth=0.4)
    return y


def src_birds(rng, n):
    def chirp(r):
        m = int(r.uniform(0.04, 0.18) * SR)
        f0, f1 = r.uniform(2500, 7000), r.uniform(2000, 8000)
        ph = _tone(np.linspace(f0, f1, m), m)
        return ph * np.hanning(m)
    return _events(rng, n, rng.uniform(2, 8), chirp, int(0.2 * SR))


def src_squeal(rng, n):  # rail squeal: high narrow tone with vibrato and a slow swell
    f = rng.uniform(2000, 6000) + 40 * np.sin(2 * np.pi * rng.uniform(3, 7) * np.arange(n) / SR)
    return _tone(f, n) * _envelope(rng, n, 0.3, depth=1.0, smooth=1.0)


def src_announcement(rng, n):  # chime then a harmonic "voice" with syllables
    m = min(n, int(rng.uniform(1.5, 3.5) * SR))
    f0 = rng.uniform(110, 230) * (1 + 0.05 * np.sin(2 * np.pi * 0.7 * np.arange(m) / SR))
    v = sum(_tone(f0 * h, m) / h for h in range(1, 10))
    v *= _envelope(rng, m, 4.5, depth=1.0, smooth=0.4)
    c = int(0.35 * SR)
    chime = np.concatenate([_tone(np.full(c, 660.0), c), _tone(np.full(c, 523.0), c)]) * np.exp(-np.arange(2 * c) % c / (0.15 * SR))
    ev = np.concatenate([chime, v])[:n]
    y = np.zeros(n)
    t = rng.integers(0, max(1, n - len(ev)))
    y[t:t + len(ev)] = ev
    return y


def src_engine(rng, n):  # engine drone: low harmonic series with slow rpm drift
    f0 = rng.uniform(25, 60) * (1 + 0.1 * np.sin(2 * np.pi * rng.uniform(0.05, 0.3) * np.arange(n) / SR))
    y = sum(_tone(f0 * h, n) * h ** -0.7 for h in range(1, 14))
    return y + 0.5 * _shaped_noise(rng, n, _band(30, 400, -3))


def src_footsteps(rng, n):
    rate = rng.uniform(1.5, 2.3)
    y = np.zeros(n)
    m = int(0.03 * SR)
    burst = _shaped_noise(rng, m, _band(400, 5000)) * np.exp(-np.arange(m) / (0.006 * SR))
    for t in np.arange(rng.uniform(0, 0.5), n / SR, 1 / rate):
        i = int((t + rng.normal(0, 0.02)) * SR)
        if 0 <= i < n - m:
            y[i:i + m] += burst * rng.uniform(0.5, 1.0)
    return y


def src_traffic_passes(rng, n):
    y = _shaped_noise(rng, n, _band(40, 3000, -4))
    t = np.arange(n) / SR
    env = np.zeros(n) + 0.1
    for c in rng.uniform(0, n / SR, size=rng.integers(1, 5)):
        env += np.exp(-((t - c) / rng.uniform(0.8, 2.0)) ** 2)
    return y * env


def src_horn(rng, n):
    def horn(r):
        m = int(r.uniform(0.3, 0.8) * SR)
        f = r.uniform(350, 520)
        return sum(_tone(np.full(m, f * h), m) / h for h in range(1, 6)) * np.hanning(m) ** 0.3
    return _events(rng, n, 0.15, horn, int(0.8 * SR))


def src_music(rng, n):  # background music: chords changing every 1-2 s
    y = np.zeros(n)
    step = int(rng.uniform(1.0, 2.0) * SR)
    for s in range(0, n, step):
        m = min(step, n - s)
        root = 220 * 2 ** (rng.integers(0, 12) / 12)
        for ratio in (1, 1.26, 1.5, 2):
            y[s:s + m] += _tone(np.full(m, root * ratio), m) * np.hanning(m) ** 0.2
    return y


def src_rail_clacks(rng, n):
    y = np.zeros(n)
    m = int(0.05 * SR)
    k = _shaped_noise(rng, m, _band(80, 1500)) * np.exp(-np.arange(m) / (0.01 * SR))
    period = rng.uniform(0.6, 1.2)
    for t in np.arange(rng.uniform(0, period), n / SR, period):
        for dt in (0.0, 0.11):
            i = int((t + dt) * SR)
            if i < n - m:
                y[i:i + m] += k
    return y


def src_whine(rng, n):  # tram / electric motor whine with glides
    f = rng.uniform(600, 1400) * (1 + 0.3 * _envelope(rng, n, 0.2, depth=1.0, smooth=1.0))
    return _tone(f, n) + 0.5 * _tone(2 * f, n)


def src_wind(rng, n):
    return _shaped_noise(rng, n, _band(20, 500, -6)) * _envelope(rng, n, 0.3, depth=0.8, smooth=1.0)


def src_fountain(rng, n):
    return _shaped_noise(rng, n, _band(1500, 12000))


def src_bell(rng, n):
    def bell(r):
        m = int(0.8 * SR)
        f = r.uniform(900, 1500)
        return (_tone(np.full(m, f), m) + 0.5 * _tone(np.full(m, 2.76 * f), m)) * np.exp(-np.arange(m) / (0.2 * SR))
    return _events(rng, n, 0.2, bell, int(0.8 * SR))


SOURCES = {
    "rumble": src_rumble, "babble": src_babble, "birds": src_birds, "squeal": src_squeal,
    "announcement": src_announcement, "engine": src_engine, "footsteps": src_footsteps,
    "traffic": src_traffic_passes, "horn": src_horn, "music": src_music,
    "clacks": src_rail_clacks, "whine": src_whine, "wind": src_wind, "fountain": src_fountain,
    "bell": src_bell,
}

#: scene -> [(source, probability, (min dB, max dB))]; room = (min RT60 s, max RT60 s).
RECIPES: dict[str, dict] = {
    "airport": {"room": (0.8, 1.8), "src": [("babble", 0.9, (-8, 0)), ("announcement", 0.7, (-6, 0)),
                                              ("footsteps", 0.6, (-14, -6)), ("music", 0.2, (-20, -12)), ("rumble", 0.3, (-20, -10))]},
    "bus": {"room": (0.1, 0.3), "src": [("engine", 1.0, (-4, 2)), ("babble", 0.4, (-16, -8)),
                                        ("bell", 0.3, (-14, -6)), ("rumble", 0.6, (-10, -4))]},
    "metro": {"room": (0.1, 0.4), "src": [("rumble", 1.0, (-4, 2)), ("squeal", 0.6, (-14, -4)),
                                          ("clacks", 0.8, (-10, -2)), ("announcement", 0.4, (-10, -2)), ("babble", 0.3, (-18, -10))]},
    "metro_station": {"room": (1.2, 2.5), "src": [("traffic", 0.7, (-8, 0)), ("announcement", 0.6, (-8, 0)),
                                                  ("footsteps", 0.6, (-14, -6)), ("babble", 0.6, (-12, -4)), ("squeal", 0.3, (-18, -8))]},
    "park": {"room": (0.05, 0.15), "src": [("birds", 0.9, (-10, 0)), ("wind", 0.8, (-10, -2)),
                                           ("babble", 0.3, (-20, -10)), ("traffic", 0.3, (-22, -12)), ("fountain", 0.2, (-18, -10))]},
    "public_square": {"room": (0.2, 0.6), "src": [("babble", 0.8, (-10, -2)), ("footsteps", 0.6, (-14, -6)),
                                                  ("fountain", 0.5, (-14, -6)), ("traffic", 0.5, (-16, -6)), ("birds", 0.4, (-18, -8))]},
    "shopping_mall": {"room": (0.6, 1.4), "src": [("music", 0.8, (-10, -2)), ("babble", 0.9, (-8, 0)),
                                                  ("footsteps", 0.5, (-14, -6)), ("announcement", 0.2, (-14, -6))]},
    "street_pedestrian": {"room": (0.15, 0.5), "src": [("footsteps", 0.9, (-8, 0)), ("babble", 0.8, (-10, -2)),
                                                       ("traffic", 0.5, (-16, -8)), ("horn", 0.2, (-16, -8)), ("bell", 0.2, (-18, -10))]},
    "street_traffic": {"room": (0.1, 0.3), "src": [("traffic", 1.0, (-4, 2)), ("engine", 0.5, (-12, -4)),
                                                   ("horn", 0.5, (-12, -4)), ("rumble", 0.6, (-10, -2))]},
    "tram": {"room": (0.1, 0.4), "src": [("whine", 0.9, (-12, -4)), ("clacks", 0.7, (-10, -2)),
                                         ("bell", 0.5, (-12, -4)), ("rumble", 0.6, (-10, -4)), ("babble", 0.3, (-18, -10))]},
}
assert tuple(sorted(RECIPES)) == SCENE_LABELS


def _reverb(rng, y, rt60):
    m = int(min(rt60, 2.5) * SR)
    t = np.arange(m) / SR
    ir = rng.standard_normal(m) * np.exp(-6.9 * t / rt60)
    ir[0] = 1.0 / max(rt60, 0.1)
    wet = scipy.signal.fftconvolve(y, ir)[:len(y)]
    return _unit(wet)


def scene_audio(scene: str, *, n: int, segment_seed: np.random.SeedSequence,
                location_seed: np.random.SeedSequence) -> np.ndarray:
    """One clip of ``scene`` as device A would record it; float32 of ``n`` samples."""
    rng = np.random.default_rng(segment_seed)
    loc = np.random.default_rng(location_seed)
    recipe = RECIPES[scene]
    rt60 = loc.uniform(*recipe["room"])
    hum_f = loc.choice([50.0, 60.0])
    loc_tilt = loc.uniform(-3, 0)
    mix = 10 ** (loc.uniform(-16, -10) / 20) * _shaped_noise(rng, n, _band(20, 16000, loc_tilt - 3))
    mix = mix + 10 ** (loc.uniform(-40, -26) / 20) * _unit(_tone(np.full(n, hum_f), n) + 0.3 * _tone(np.full(n, 3 * hum_f), n))
    picked = 0
    for name, prob, (lo, hi) in recipe["src"]:
        if rng.random() < prob or (picked == 0 and name == recipe["src"][0][0]):
            mix = mix + 10 ** (rng.uniform(lo, hi) / 20) * _unit(SOURCES[name](rng, n))
            picked += 1
    # an unrelated source from another scene now and then (scenes overlap in real life)
    if rng.random() < 0.35:
        mix = mix + 10 ** (rng.uniform(-16, -6) / 20) * _unit(SOURCES[rng.choice(sorted(SOURCES))](rng, n))
    y = 0.6 * mix + 0.4 * _reverb(rng, mix, rt60)
    return (_unit(y) * 10 ** (rng.uniform(-32, -22) / 20)).astype(np.float32)


# ----------------------------------------------------------------------------- devices
@dataclasses.dataclass(frozen=True)
class DeviceModel:
    """A fixed simulated recording chain; parameters are a pure function of the device name."""

    name: str

    def _rng(self):
        return np.random.default_rng(zlib.crc32(f"device-{self.name}".encode()))

    def apply(self, y: np.ndarray) -> np.ndarray:
        if self.name == "a":
            return y.astype(np.float32)
        rng = self._rng()
        strong = self.name in UNSEEN_DEVICES
        n = len(y)
        # impulse response: a few early reflections of the housing
        m = int(0.012 * SR)
        ir = np.zeros(m)
        ir[0] = 1.0
        for _ in range(6 if strong else 4):
            ir[rng.integers(20, m)] += rng.uniform(-0.5, 0.5)
        f = np.fft.rfftfreq(n + m, 1 / SR)
        hp = rng.uniform(80, 400 if strong else 250)
        lp = rng.uniform(5000, 9000) if strong else rng.uniform(8000, 16000)
        gain = 1 / np.sqrt(1 + (hp / np.maximum(f, 1)) ** 4) / np.sqrt(1 + (f / lp) ** 6)
        for _ in range(3):  # resonances and dips of the capsule
            fc, g_db, q = rng.uniform(300, 6000), rng.uniform(-9, 9) * (1.5 if strong else 1.0), rng.uniform(1, 4)
            gain *= 10 ** (g_db / 20 * np.exp(-(np.log2(np.maximum(f, 1) / fc) * q) ** 2))
        z = np.fft.irfft(np.fft.rfft(y, n + m) * np.fft.rfft(ir, n + m) * gain, n + m)[:n]
        # dynamic range compression on a 10 ms RMS envelope
        thr_db, ratio = rng.uniform(-40, -28), rng.uniform(2, 6)
        hop = int(0.01 * SR)
        frames = np.sqrt(np.convolve(z ** 2, np.ones(hop) / hop, mode="same") + 1e-12)
        lvl = 20 * np.log10(frames)
        g = np.where(lvl > thr_db, (thr_db - lvl) * (1 - 1 / ratio), 0.0)
        z = z * 10 ** (np.convolve(g, np.ones(hop * 5) / (hop * 5), mode="same") / 20)
        z = _unit(z) * np.sqrt(np.mean(y ** 2))
        noise = rng.uniform(-66, -54) / 20
        z = z + 10 ** noise * np.random.default_rng(rng.integers(1 << 31) + n).standard_normal(n)
        return z.astype(np.float32)


# ----------------------------------------------------------------------------- layout
@dataclasses.dataclass(frozen=True)
class Segment:
    scene: str
    city: str
    location_id: int
    segment_id: int
    split: str  # "train" or "evaluate"
    devices: tuple[str, ...]
    seed_path: tuple[int, ...]

    @property
    def identifier(self) -> str:
        return f"{self.city}-{self.location_id}"

    def filename(self, device: str, part: int = 0, layout: Layout = LAYOUTS["tau2020"]) -> str:
        return layout.filename(scene=self.scene, city=self.city, location=self.location_id,
                               segment=self.segment_id, device=device, part=part)


def plan_segments(size: SynthSize, seed: int) -> list[Segment]:
    """Which segments exist, their split and devices. Locations never cross splits."""
    segs: list[Segment] = []
    train_rr = eval_rr = 0
    per_loc = 3 if size.segments_per_scene >= 9 else 2
    for si, scene in enumerate(SCENE_LABELS):
        n_loc = max(2, -(-size.segments_per_scene // per_loc))
        n_eval_loc = max(1, round(n_loc * 0.3))
        for li in range(n_loc):
            split = "evaluate" if li >= n_loc - n_eval_loc else "train"
            city = CITIES[(si * 7 + li) % len(CITIES)]
            loc_id = 100 * si + li
            for k in range(per_loc):
                idx = li * per_loc + k
                if idx >= size.segments_per_scene:
                    break
                if split == "train":
                    extra = ()
                    if idx % 2 == 1:
                        extra = (TRAIN_EXTRA_DEVICES[train_rr % len(TRAIN_EXTRA_DEVICES)],)
                        train_rr += 1
                else:
                    extra = tuple(EVAL_EXTRA_DEVICES[(eval_rr + j) % len(EVAL_EXTRA_DEVICES)]
                                  for j in range(size.eval_extra_devices_per_segment))
                    eval_rr += size.eval_extra_devices_per_segment
                segs.append(Segment(scene, city, loc_id, idx * 10, split, ("a", *extra),
                                    (seed, si, li, k)))
    return segs


def _render_segment(seg: Segment, clip_seconds: float, out_dir: str, layout_name: str = "tau2020",
                    parts: int = 1) -> list[str]:
    """Render ``seg`` through each of its devices; in the 2022 layout the segment is ``parts``
    clips long and cut into ``parts`` files (as TAU 2022 cut the 2020 recordings)."""
    layout = LAYOUTS[layout_name]
    parts = parts if layout.parts_per_segment > 1 else 1
    clip_n = int(round(SR * clip_seconds))
    n = clip_n * parts
    seed, si, li, k = seg.seed_path
    clean = scene_audio(seg.scene, n=n, segment_seed=np.random.SeedSequence([seed, si, li, k, 1]),
                        location_seed=np.random.SeedSequence([seed, si, li, 0]))
    written = []
    for dev in seg.devices:
        y = DeviceModel(dev).apply(clean)
        peak = float(np.max(np.abs(y)))
        if peak > 0.98:
            y = y * (0.98 / peak)
        for part in range(parts):
            name = seg.filename(dev, part, layout)
            sf.write(Path(out_dir) / name, y[part * clip_n:(part + 1) * clip_n], SR, subtype="PCM_24", format="WAV")
            written.append(name)
    return written


def train_subsets(train_rows, *, seed: int) -> dict[int, list[str]]:
    """The DCASE 2024-style training subsets of generated fold1_train rows ``(filename, scene,
    segment key)``: percent -> file names in fold1_train order. Whole segments, nested (each
    subset holds the smaller ones), per scene ``max(1, round(p / 100 * segments of the scene))``."""
    rng = np.random.default_rng([seed, 2024])
    by_scene: dict[str, list[str]] = {}
    for _, scene, key in train_rows:
        if key not in by_scene.setdefault(scene, []):
            by_scene[scene].append(key)
    order = {scene: [keys[i] for i in rng.permutation(len(keys))] for scene, keys in sorted(by_scene.items())}
    out = {}
    for p in TRAIN_SPLITS:
        keep = {k for keys in order.values() for k in keys[:max(1, round(p / 100 * len(keys)))]}
        out[p] = [f for f, _, key in train_rows if key in keep]
    return out


def make_dataset(out_dir: Path, *, size: str = "demo", seed: int = 0, clip_seconds: float | None = None,
                 parts_per_segment: int | None = None, workers: int = DEFAULT_WORKERS, log=print) -> Path:
    """Write a TAU-layout dataset to ``out_dir`` (which must not exist, or be a finished one):
    the 2022 layout (with the DCASE 2024 split files) for one-second clips, else the 2020 one.

    ``parts_per_segment`` overrides the ten one-second parts a 2022-layout segment is cut into (tests
    use fewer). Returns the dataset root. Written into a temp folder and renamed, so an interrupted run
    leaves nothing that looks like a dataset. Same arguments -> the same bytes.
    """
    out_dir = Path(out_dir)
    spec = resolve_size(size, clip_seconds)
    if parts_per_segment is not None:  # fewer one-second parts per segment than TAU's 10 (small test sets)
        if parts_per_segment < 1:
            raise ValueError("parts_per_segment must be at least 1")
        spec = dataclasses.replace(spec, parts_per_segment=int(parts_per_segment))
    params = {"size": size, "seed": seed, **dataclasses.asdict(spec)}
    if not spec.layout.has_train_splits:  # 2020 layout: not cut into parts (and older datasets' params stay equal)
        params.pop("parts_per_segment")
    done = out_dir / "synth_config.json"
    if done.is_file():
        if artifacts.read_json(done).get("params") == params:
            log(f"make-dataset: {out_dir} already holds this dataset; reusing it")
            return out_dir
        raise FileExistsError(f"{out_dir} holds a generated dataset with other parameters; "
                              "choose another folder or delete it")
    if out_dir.exists() and any(out_dir.iterdir()):
        raise FileExistsError(f"{out_dir} exists and is not empty; choose a new folder")
    segs = plan_segments(spec, seed)
    layout = spec.layout
    parts = spec.parts_per_segment if layout.parts_per_segment > 1 else 1
    with artifacts.staging_dir(out_dir, stage="make-dataset") as tmp:
        (tmp / "audio").mkdir()
        (tmp / "evaluation_setup").mkdir()
        calls = [(s, spec.clip_seconds, str(tmp), layout.name, parts) for s in segs]
        for _ in parallel_map(_render_segment, calls, workers=workers, desc="make-dataset", unit="segment"):
            pass

        write_simulated_irs(tmp / "impulse_responses", seed=seed)
        rows = [(s.filename(d, part, layout), s.scene, s.identifier, d, s.split)
                for s in segs for d in s.devices for part in range(parts)]
        df = pd.DataFrame(rows, columns=["filename", "scene_label", "identifier", "source_label", "split"])
        df[["filename", "scene_label", "identifier", "source_label"]].to_csv(tmp / "meta.csv", sep="\t", index=False)
        for split in ("train", "evaluate"):
            part = df[df["split"] == split]
            part[["filename", "scene_label"]].to_csv(tmp / "evaluation_setup" / f"fold1_{split}.csv", sep="\t", index=False)
        df.loc[df["split"] == "evaluate", ["filename"]].to_csv(tmp / "evaluation_setup" / "fold1_test.csv", sep="\t", index=False)
        subsets = {}
        if layout.has_train_splits:
            (tmp / "split_setup").mkdir()
            train = df[df["split"] == "train"]
            subsets = train_subsets([(f, sc, layout.segment_of(f)) for f, sc in zip(train["filename"], train["scene_label"])],
                                    seed=seed)
            for p, names in subsets.items():
                train[train["filename"].isin(set(names))][["filename", "scene_label"]].to_csv(
                    tmp / "split_setup" / f"split{p}.csv", sep="\t", index=False)
        artifacts.write_json(tmp / "synth_config.json", {
            "stage": "make-dataset", "params": params, "clips": len(df), "layout": layout.name,
            "train_split_clips": {str(p): len(v) for p, v in subsets.items()},
            "note": f"generated data in the {layout.title} layout; not TAU, not comparable to TAU results",
            **artifacts.provenance()})
    log(f"make-dataset: wrote {len(rows)} clips ({len(segs)} segments) in the {layout.title} layout to {out_dir}")
    return out_dir
