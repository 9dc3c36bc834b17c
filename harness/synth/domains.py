"""Named stainings and scanners: the domains of the aligned robustness suite (synth-plism).

PLISM stained the same tissue in 13 labs' protocols and scanned each slide on 7 scanners. Here a
staining changes the stain colour vectors and how strongly each stain takes (Beer-Lambert), and
a scanner changes optics, colour profile, tone curve, sensor noise and compression; the tissue
drawn underneath is identical, so tile i of every domain is pixel-aligned.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Sequence

import numpy as np

from harness.synth.scanner import REFERENCE_SCANNER, Scanner
from harness.synth.stain import STANDARD_HE, Staining

STAININGS: dict[str, Staining] = {
    s.name: s
    for s in (
        STANDARD_HE,
        # haematoxylin-heavy, bluer protocol (long haematoxylin time, Gill's III)
        Staining("hematoxylin-heavy", hematoxylin=(0.55, 0.75, 0.37), eosin=(0.08, 0.99, 0.10),
                 hematoxylin_strength=1.35, eosin_strength=0.8),
        # eosin-heavy, pinker protocol
        Staining("eosin-heavy", hematoxylin=(0.65, 0.70, 0.29), eosin=(0.03, 0.95, 0.30),
                 hematoxylin_strength=0.8, eosin_strength=1.45),
        # faded, purple-shifted slide (old section, weak stains, thicker mounting medium)
        Staining("faded", hematoxylin=(0.72, 0.66, 0.21), eosin=(0.20, 0.93, 0.30),
                 hematoxylin_strength=0.7, eosin_strength=0.7, glass_od=0.08),
        # over-stained slide with a brownish haematoxylin
        Staining("dark-brown", hematoxylin=(0.50, 0.70, 0.52), eosin=(0.10, 0.98, 0.15),
                 hematoxylin_strength=1.5, eosin_strength=1.25),
    )
}

SCANNERS: dict[str, Scanner] = {
    s.name: s
    for s in (
        REFERENCE_SCANNER,
        # soft optics, warm colour profile, brightening tone curve, strong JPEG
        Scanner("soft-warm", blur_sigma=1.2, gamma=1.25, noise_std=0.015, jpeg_quality=60,
                colour_matrix=((1.05, 0.02, 0.0), (0.0, 0.97, 0.0), (0.0, 0.03, 0.88))),
        # sharp, cool, contrasty scanner with a noisier sensor
        Scanner("sharp-cool", blur_sigma=0.0, gamma=0.8, noise_std=0.03, jpeg_quality=85,
                colour_matrix=((0.9, 0.0, 0.04), (0.0, 1.0, 0.02), (0.02, 0.0, 1.1))),
    )
}


def domain_name(staining: str, scanner: str) -> str:
    """The split name of one domain (one 'slide' of the aligned suite)."""
    return f"{staining}@{scanner}"


def random_acquisition(rng: np.random.Generator, stainings: Sequence[str] | None = None,
                       scanners: Sequence[str] | None = None) -> tuple[Staining, Scanner]:
    """A staining and a scanner for one item, drawn independently of its label: one of the named
    stainings and scanners, then jittered continuously (stain hue and uptake, mounting medium,
    focus, tone curve, colour profile and exposure, sensor noise, compression). Every synthetic
    tile and slide gets its own, so colour carries no label: a model must read morphology.
    `stainings` / `scanners` narrow the named ones drawn from (a cohort's domain mix)."""
    stain = STAININGS[str(rng.choice(list(stainings or STAININGS)))]
    scanner = SCANNERS[str(rng.choice(list(scanners or SCANNERS)))]

    def hue(vector: tuple[float, float, float]) -> tuple[float, float, float]:
        v = np.abs(np.asarray(vector) / np.linalg.norm(vector) + rng.normal(0.0, 0.05, 3))
        return tuple(float(x) for x in v / np.linalg.norm(v))

    staining = replace(
        stain, name=f"{stain.name}~", hematoxylin=hue(stain.hematoxylin), eosin=hue(stain.eosin),
        hematoxylin_strength=stain.hematoxylin_strength * float(rng.lognormal(0.0, 0.18)),
        eosin_strength=stain.eosin_strength * float(rng.lognormal(0.0, 0.18)),
        glass_od=stain.glass_od + float(rng.uniform(0.0, 0.05)),
    )
    profile = np.asarray(scanner.colour_matrix) * (1 + rng.normal(0.0, 0.02, (3, 1)))
    profile = profile * float(rng.uniform(0.93, 1.05))  # exposure
    acquisition = replace(
        scanner, name=f"{scanner.name}~",
        blur_sigma=scanner.blur_sigma + float(rng.uniform(0.0, 1.0)),  # focus
        gamma=scanner.gamma * float(rng.lognormal(0.0, 0.08)),
        colour_matrix=tuple(tuple(float(x) for x in row) for row in profile),
        noise_std=scanner.noise_std + float(rng.uniform(0.0, 0.015)),
        jpeg_quality=int(rng.integers(60, 96)) if rng.random() < 0.7 else scanner.jpeg_quality,
    )
    return staining, acquisition


def item_acquisition(rng: np.random.Generator, nuisance: bool, stainings: Sequence[str] | None = None,
                     scanners: Sequence[str] | None = None) -> tuple[Staining, Scanner]:
    """An item's staining and scanner: its own random draw, or the standard ones without nuisance."""
    return random_acquisition(rng, stainings, scanners) if nuisance else (STANDARD_HE, REFERENCE_SCANNER)
