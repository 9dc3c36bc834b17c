"""Text about synthetic tiles, generated from their ground truth: VQA pairs and reports.

Both are functions of a tile's latent (tissue one-hot, cellularity, atypia, mitoses) and a seed, so a
model that sees the tissue can answer and describe it, and one that does not cannot.
"""

from __future__ import annotations

import numpy as np

from harness.synth.tissue import LATENT_FACTORS, TISSUE_CLASSES

LEVELS = ("low", "moderate", "high")


def _level(value: float) -> str:
    return LEVELS[min(int(value * 3), 2)]


def _decode(latent: np.ndarray) -> tuple[str, str, str]:
    n = len(TISSUE_CLASSES)
    tissue = TISSUE_CLASSES[int(np.argmax(latent[:n]))]
    cellularity, atypia = (float(latent[n + LATENT_FACTORS.index(f)]) for f in ("cellularity", "atypia"))
    return tissue, _level(cellularity), _level(atypia)


def vqa_records(latents: np.ndarray, seed: int) -> list[dict]:
    """Four questions per tile: two yes/no, one multiple choice, one open-ended."""
    records = []
    for index, latent in enumerate(latents):
        rng = np.random.default_rng([seed, 7, index])
        tissue, cellularity, grade = _decode(latent)
        asked = tissue if rng.random() < 0.5 else str(rng.choice([t for t in TISSUE_CLASSES if t != tissue]))
        records.append({"image": index, "kind": "closed", "type": "presence",
                        "question": f"Is {asked} tissue present?", "answer": "yes" if asked == tissue else "no"})
        dense = rng.random() < 0.5
        question = "Is the tissue densely cellular?" if dense else "Is the tissue sparsely cellular?"
        truth = cellularity == "high" if dense else cellularity == "low"
        records.append({"image": index, "kind": "closed", "type": "cellularity-yes-no", "question": question,
                        "answer": "yes" if truth else "no"})
        options = [tissue, *rng.choice([t for t in TISSUE_CLASSES if t != tissue], size=2, replace=False)]
        rng.shuffle(options)
        records.append({"image": index, "kind": "closed", "type": "predominant-tissue",
                        "question": f"Which tissue predominates: {options[0]}, {options[1]} or {options[2]}?",
                        "answer": tissue})
        open_questions = [
            ("tissue", "What tissue is shown?", tissue),
            ("cellularity", "What is the cellularity?", f"{cellularity} cellularity"),
            ("grade", "What is the nuclear grade?", f"{grade} grade"),
        ]
        # atypia shows only in tumour nuclei: the grade is asked of tumour tiles alone
        kind, question, answer = open_questions[index % (3 if tissue == "tumour" else 2)]
        records.append({"image": index, "kind": "open", "type": kind, "question": question, "answer": answer})
    return records


_TISSUE_SENTENCES = {
    "tumour": ["Sections show sheets of atypical epithelial cells.", "The tissue consists of a carcinoma growing in solid nests."],
    "stroma": ["Sections show fibrous stroma with collagen bundles.", "The tissue consists of desmoplastic stroma with spindle cells."],
    "lymphocytes": ["Sections show a dense lymphoid infiltrate.", "The tissue consists of sheets of small lymphocytes."],
    "adipose": ["Sections show mature adipose tissue.", "The tissue consists of fat cells with thin septa."],
    "mucosa": ["Sections show colonic mucosa with intact glands.", "The tissue consists of mucosa with goblet cells and crypts."],
    "necrosis": ["Sections show necrotic debris with nuclear dust.", "The tissue consists of coagulative necrosis and karyorrhexis."],
}
_CELLULARITY = {
    "low": ["Cellularity is low.", "The specimen is sparsely cellular."],
    "moderate": ["Cellularity is moderate.", "The specimen is moderately cellular."],
    "high": ["Cellularity is high.", "The specimen is densely cellular."],
}
_GRADE = {
    "low": ["Nuclei are small and uniform.", "Nuclear atypia is minimal."],
    "moderate": ["Nuclei show moderate pleomorphism.", "Nuclear atypia is moderate."],
    "high": ["Nuclei are enlarged and markedly pleomorphic.", "Nuclear atypia is marked."],
}


def report_records(latents: np.ndarray, seed: int) -> list[dict]:
    """One multi-sentence report per tile: tissue, cellularity, nuclei, in varied wording."""
    records = []
    for index, latent in enumerate(latents):
        rng = np.random.default_rng([seed, 11, index])
        tissue, cellularity, grade = _decode(latent)
        sentences = [
            _TISSUE_SENTENCES[tissue][rng.integers(2)],
            _CELLULARITY[cellularity][rng.integers(2)],
            _GRADE[grade][rng.integers(2)],
        ]
        records.append({"image": index, "report": " ".join(sentences)})
    return records
