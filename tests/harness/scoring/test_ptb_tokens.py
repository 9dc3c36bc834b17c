"""coco-caption's PTB tokens without Java (harness/scoring/ptb_tokens.py) against the Java
PTBTokenizer pycocoevalcap runs (CoreNLP 3.4.1), token for token on a sweep of pathology-report
strings, and CIDEr-D on them against pycocoevalcap's Cider. Where Java is absent, the tokens the
Java tokeniser gave for the report patterns that a plain split gets wrong (recorded from
pycocoevalcap 1.2 on this project's machine) are checked instead."""

import shutil

import numpy as np
import pytest

from harness.scoring.text_metrics import cider_d_scores, cider_tokens

needs_java = pytest.mark.skipif(shutil.which("java") is None, reason="coco-caption's PTB tokeniser needs Java")

REPORT_STRINGS = [
    'Gleason score 3+4=7 (grade group 2), involving 30% of the core.',
    'Gleason score 4+3=7; Gleason pattern 4 in 60%.',
    'Nottingham grade 3+3+2 = 8 (grade III).',
    'Invasive ductal carcinoma, Nottingham grade 2 (tubules 3, pleomorphism 2, mitoses 1).',
    'Tumour measures 1,200 um in greatest dimension.',
    'Specimen weighs 1,250 g and measures 25.0 x 18.5 x 6.0 cm.',
    'A 3.5cm well-circumscribed mass is present, 2.0 cm from the margin.',
    'Margins: closest margin (deep) is 0.2 cm; all others > 1 cm.',
    'Lymph nodes: 0/12 involved (pN0); ITCs not seen.',
    'Two of 14 lymph nodes (2/14) positive, largest deposit 4.5 mm, no ENE.',
    'pT2 pN1a M0, AJCC 8th edition.',
    'pT3aN1bM0, stage group IIIB.',
    'ER positive (95%, strong), PR positive (40%, moderate), HER2 negative (1+).',
    'HER2 IHC 2+, FISH ratio 2.4 (HER2/CEP17), amplified.',
    'Ki-67 proliferation index ~20%.',
    'Mitotic count: 12 per 10 HPF (2 mm2).',
    'The nuclear:cytoplasmic ratio is high, approximately 10:1.',
    'Lymphovascular invasion is present, e.g. in the deep dermis.',
    'Ancillary studies, i.e., immunohistochemistry, support the diagnosis.',
    'Reviewed with Dr. Smith at 3 p.m. on 12/03/2026.',
    'See Fig. 2 and No. 3 in the addendum, etc.',
    'Sections show a dense lymphoid infiltrate (grade 2), 3.5 mm across.',
    "The tissue consists of necrotic debris with nuclear dust, and the patient's margins aren't involved.",
    'Well-differentiated glands: H&E shows 1/3 of crypts with goblet cells!',
    "Tumor located at 12 o'clock, 3cm from the nipple.",
    'Biopsy (A1-A3): colonic mucosa with mild chronic inflammation.',
    'Microsatellite status: MLH1, PMS2, MSH2 and MSH6 retained (MMR-proficient).',
    'PD-L1 (22C3) TPS < 1%; CPS 5.',
    'BRAF V600E mutation not detected.',
    'The lesion is 1.2-1.5 cm, the pH 7.4, and the temperature 37°C.',
    'Size 2.5 x 1.0 x 0.8 cm; weight 45g.',
    'Findings are consistent with adenocarcinoma [see comment].',
    'Comment: {preliminary} findings were called to the clinician.',
    'Diagnosis -- invasive carcinoma ... see below.',
    '"Atypical" cells are present; \'suspicious\' foci noted.',
    'Frozen section diagnosis: benign; permanent sections concur.',
    'Prostate, left base, needle biopsy: benign prostatic tissue.',
    'Cervix, LEEP: HSIL (CIN 2-3), margins free.',
    'Liver, segment VI, wedge resection: metastatic colorectal adenocarcinoma, 1.1 cm.',
    'Kidney: clear cell RCC, WHO/ISUP grade 2, pT1a (3.2 cm).',
    'Skin, left forearm, shave: BCC, nodular type, peripheral margin involved.',
    'Breast, right, 10:00, 5 cm FN, core biopsy: IDC.',
    'Bone marrow: 5% blasts, M:E ratio 3:1.',
    'Thyroid, FNA: Bethesda category II, benign follicular nodule.',
    'Stomach, antrum: H. pylori-associated chronic gastritis.',
    'No malignancy identified (0 of 3 cores).',
    'The specimen cannot be further evaluated.',
    "Cells don't show atypia and can't be graded.",
    'Additional levels (x3) were examined.',
    'Tumor cells are CK7+/CK20-, TTF-1+, napsin A+.',
    'CD3+, CD20- T-cell population; CD4:CD8 ratio 4:1.',
    'Dimensions: 4 x 3 x 2 cm (approx.).',
    'Grade 3/3, with extensive necrosis (>50%).',
    'The margin is 5mm; the tumour is 1.5cm.',
    'Depth of invasion 1.05 mm (Breslow), Clark level IV.',
    'Resection margins are clear (>10 mm).',
    'Surgical margins, uninvolved; closest 0.5 cm (superior).',
]

# (text, the Java tokeniser's output through pycocoevalcap: lower case, punctuation removed)
RECORDED = [
    ('Gleason score 3+4=7 (grade group 2).',
     ['gleason', 'score', '3', '+4', '=', '7', '-lrb-', 'grade', 'group', '2', '-rrb-']),
    ('Nottingham grade 3+3+2 = 8.',
     ['nottingham', 'grade', '3', '+3', '+2', '=', '8']),
    ('Tumour measures 1,200 um and 3.5cm.',
     ['tumour', 'measures', '1,200', 'um', 'and', '3.5', 'cm']),
    ('Margins, e.g. the deep margin, are clear.',
     ['margins', 'e.g.', 'the', 'deep', 'margin', 'are', 'clear']),
    ('Reviewed by Dr. Smith at 3 p.m. today.',
     ['reviewed', 'by', 'dr.', 'smith', 'at', '3', 'p.m.', 'today']),
    ('Nuclear ratio 10:1 noted.',
     ['nuclear', 'ratio', '10:1', 'noted']),
    ("Tumor at 12 o'clock, 3cm from nipple.",
     ['tumor', 'at', '12', "o'clock", '3cm', 'from', 'nipple']),
    ('size: 1.2-1.5 cm',
     ['size', '1.2-1', '.5', 'cm']),
    ('1.5x2.0cm mass',
     ['1.5', 'x2', '.0', 'cm', 'mass']),
    ('See Fig. 2, not fig. b; No. 3 but No. b.',
     ['see', 'fig.', '2', 'not', 'fig', 'b', 'no.', '3', 'but', 'no', 'b.']),
    ('ER+/PR-/HER2- carcinoma, Ki-67 ~20%.',
     ['er', '+', '/', 'pr', '/', 'her2', 'carcinoma', 'ki-67', '~', '20', '%']),
    ("The patient's margins aren't involved [see comment].",
     ['the', 'patient', "'s", 'margins', 'are', "n't", 'involved', '-lsb-', 'see', 'comment', '-rsb-']),
]


def java_tokens(texts: list[str]) -> list[list[str]]:
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    tokenized = PTBTokenizer().tokenize({i: [{"caption": t}] for i, t in enumerate(texts)})
    return [tokenized[i][0].split() for i in range(len(texts))]


@pytest.mark.parametrize("text, expected", RECORDED)
def test_report_patterns_tokenise_as_the_java_tokeniser_did(text, expected):
    assert cider_tokens(text) == expected


@needs_java
def test_every_report_string_tokenises_as_java_does():
    ours = [" ".join(cider_tokens(t)).split() for t in REPORT_STRINGS]  # CIDEr splits on any whitespace
    different = [(t, o, j) for t, o, j in zip(REPORT_STRINGS, ours, java_tokens(REPORT_STRINGS)) if o != j]
    assert not different, different[:3]


@needs_java
def test_cider_d_on_report_strings_equals_coco_caption():
    from pycocoevalcap.cider.cider import Cider

    references = REPORT_STRINGS
    rng = np.random.default_rng(0)
    hypotheses = [REPORT_STRINGS[i] for i in rng.permutation(len(REPORT_STRINGS))]  # mostly unrelated
    hypotheses[::3] = REPORT_STRINGS[::3]  # and every third one exact
    java_refs, java_hyps = java_tokens(references), java_tokens(hypotheses)
    expected_mean, expected = Cider().compute_score({i: [" ".join(r)] for i, r in enumerate(java_refs)},
                                                    {i: [" ".join(h)] for i, h in enumerate(java_hyps)})
    ours = cider_d_scores([cider_tokens(h) for h in hypotheses], [[cider_tokens(r)] for r in references])
    np.testing.assert_allclose(ours, expected, rtol=1e-9)
    assert ours.mean() == pytest.approx(expected_mean)
