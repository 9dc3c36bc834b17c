"""Named stainings and scanners: the domains of the aligned robustness suite (synth-plism).

PLISM stained the same tissue in 13 labs' protocols and scanned each slide on 7 scanners. Here a
staining changes the stain colour vectors and how strongly each stain takes (Beer-Lambert), and
a scanner changes optics, colour profile, tone curve, sensor noise and compression; the tissue
drawn underneath is identical, so tile i of every domain is pixel-aligned.
"""

from __future__ import annotations

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
