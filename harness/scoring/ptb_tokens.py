"""The Penn Treebank tokens coco-caption gives CIDEr-D: a Python copy of the rules of Stanford's
PTBLexer (CoreNLP 3.4.1, the jar pycocoevalcap runs as `PTBTokenizer -preserveLines -lowerCase`)
that English report text reaches, so that CIDEr-D needs no Java.

The lexer is JFlex's: at each position every rule is tried, the longest match wins (a rule's
trailing context counts towards its length, as in JFlex), and of equally long matches the rule
listed first (so each rule's alternatives here are ordered longest first, as Python's regular
expressions take the first alternative that matches). Literal words match in any case (the lexer is caseless); character classes keep
their case. What report text needs and a naive split gets wrong: signed numbers (`3+4=7` is
3, +4, =, 7), numbers with separators (`1,200`, `10:1`, `.5`), a number before a unit (`3.5cm` is
3.5, cm, but `3cm` stays), hyphenated and slashed words (`Ki-67`, `T3a/N1b/M0`, `1-2/3`),
abbreviations that keep their period (`e.g.`, `Dr.`, `p.m.`, `etc.`, `Fig. 2`), `o'clock`,
clitics (`are n't`, `patient 's`), and brackets spelled out (-LRB-).

Checked token for token against the Java tokeniser on a sweep of pathology-report strings
(tests/harness/scoring/test_ptb_tokens.py, where Java is installed). Rules for URLs, e-mail
addresses, phone numbers, SGML entities and non-Latin scripts are left out: a token there may
differ from Java's.
"""

from __future__ import annotations

import re

LETTER = r"[^\W\d_]"
DIGIT = r"\d"
APOS = r"(?:['\u0092\u2019]|&apos;)"
APOSETC = rf"(?:{APOS}|[\u0091\u2018\u201B])"
HYPHEN = r"[-_\u058A\u2010\u2011]"
NUM = rf"(?:{DIGIT}*(?:[.:,\u00AD\u066B\u066C]{DIGIT}+)+|{DIGIT}+)"
ACRO = r"(?:[A-Za-z](?:\.[A-Za-z])+)"
SPACE = r"[ \t\u00A0\u2000-\u200A\u3000]"
SPACENL = r"[ \t\u00A0\u2000-\u200A\u3000\r\n\u2028\u2029\u000B\u000C\u0085]"
INSENTP = r"[,;:]"
ALNUM = r"[^\W_]"  # a letter or a digit

# abbreviations (CoreNLP 3.4.1's lists, induced from the 1987 WSJ); the word lists match in any case
ABMONTH = r"Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sep|Sept|Oct|Nov|Dec"
ABDAYS = r"Mon|Tue|Tues|Wed|Thu|Thurs|Fri"
ABSTATE = (r"Ala|Ariz|(?-i:A)rk|Calif|Colo|Conn|Dak|Del|Fla|Ga|(?-i:I)ll|Ind|Kans?|Ky|La|(?-i:M)ass|Md|Mich|Minn|"
           r"(?-i:M)iss|Mo|Mont|Neb|Nev|Okla|(?-i:O)re|Pa|Penn|Tenn|Tex|Va|Vt|(?-i:W)ash|Wisc?|Wyo")
ABTITLE = (r"Mr|Mrs|Ms|(?-i:M)iss|Drs?|Profs?|Sens?|Reps?|Attys?|Lt|Col|Gen|Messrs|Govs?|Adm|Rev|Maj|Sgt|Cpl|Pvt|"
           r"Mt|Capt|Ste?|Ave|Pres|Lieut|Hon|Brig|Co?mdr|Pfc|Spc|Supts?|Det")
ABPTIT = r"Jr|Sr|Bros|(?:Ed|Ph)\.D|Blvd|Rd|Esq"
ABCOMP = r"Inc|Cos?|Corp|Pp?tys?|Ltd|Plc|Bancorp|Dept|Bhd|Assn|Univ|Intl|Sys"
ABCOMP2 = r"Invt|Elec|Natl|M[ft]g"
ABNUM = r"Prop|Ph|tel|est|ext|sq|ft"
ABBREV1 = rf"(?i:{ABPTIT}|{ABMONTH}|{ABDAYS}|{ABSTATE}|{ABCOMP}|{ABNUM}|etc|al|seq)\."
ABBREV2 = rf"(?:{ACRO}|(?i:a\.k\.a|{ABTITLE}|vs|Alex|Wm|Jos|Cie|cf|TREAS|{ABCOMP2})|[A-Za-z])\."
ABBREV3 = r"(?i:ca|figs?|nos?|pp|arts?|op|bldg|prop)\."  # only before a number (`Fig. 2`, `No.3`)

THING = (rf"(?:[dDoOlL]{APOSETC}{ALNUM})?{ALNUM}+"
         rf"(?:{HYPHEN}(?:[dDoOlL]{APOSETC}{ALNUM})?{ALNUM}+)*")
HTHING = rf"[A-Za-z0-9][A-Za-z0-9.,\u00AD]*(?:-(?:{ACRO}\.|[A-Za-z0-9\u00AD]+))+"
THINGA = r"[A-Z]+(?:(?:[+&]|&amp;)[A-Z]+)+"
THING3 = r"[A-Za-z0-9]+(?:-[A-Za-z]+){0,2}(?:\\?/[A-Za-z0-9]+(?:-[A-Za-z]+){0,2}){1,2}"
REDAUX = rf"{APOS}(?:[msdMSD]|(?i:re|ve|ll))"
APOWORD = (rf"{APOS}n{APOS}?|[lLdDjJ]{APOS}|(?i:Dunkin){APOS}|(?i:somethin){APOS}|(?i:ol){APOS}|{APOS}(?i:em)|"
           rf"[A-HJ-XZn]{APOSETC}{LETTER}{{2}}{LETTER}*|{APOS}[2-9]0s|{APOS}(?i:till?)|"
           rf"{LETTER}{LETTER}*[aeiouyAEIOUY]{APOSETC}[aeiouA-Z]{LETTER}*|{APOS}(?i:cause)|(?i:cont'd)\.?|"
           r"(?i:'twas|nor'easter|c'mon|e'er|s'mores|ev'ry|li'l|nat'l)")
FRAC = rf"(?:{DIGIT}{{1,4}}[- \u00A0])?{DIGIT}{{1,4}}(?:\\?/|\u2044){DIGIT}{{1,4}}"
QUOTES = rf"''|[`\u2018\u2019\u201A\u201B\u201C\u201D\u0091\u0092\u0093\u0094\u201E\u201F\u2039\u203A\u00AB\u00BB]{{1,2}}|{APOS}"
MISCSYMBOL = r"[\u00A6-\u00A9\u00AC\u00AE-\u00BA\u00D7\u00F7\u2020-\u2023\u2032-\u2038\u2100-\u214F\u2190-\u22FF]"

BRACKETS = {"(": "-LRB-", ")": "-RRB-", "[": "-LSB-", "]": "-RSB-", "{": "-LCB-", "}": "-RCB-"}
SKIP, QUOTE = "skip", "quote"

# (name, head, trailing context or None, what the token becomes: None = its text)
RULES: list[tuple[str, str, str | None, object]] = [
    ("cannot", r"(?i:cannot)", None, "can"),                       # can + not (the rest is lexed again)
    ("sgml", r"<\/?[A-Za-z!][^>]*>", None, None),
    ("word-redaux", rf"{LETTER}+", REDAUX, None),                 # patient|'s
    ("sword-nt", r"[A-Za-z\u00AD]*[A-MO-Za-mo-z]\u00AD*", rf"(?i:n){APOSETC}(?i:t)", None),  # are|n't
    ("word", rf"(?:{LETTER}|&[aeiouAEIOU](?:acute|grave|uml);)+", None, None),
    ("apoword", APOWORD, None, None),
    ("apoword2", rf"y{APOS}", LETTER, None),
    ("redaux", REDAUX, r"[^A-Za-z]|\Z", None),
    ("nt", rf"(?i:n){APOSETC}(?i:t)", None, None),
    ("date", rf"{DIGIT}{{1,2}}[\-/]{DIGIT}{{1,2}}[\-/]{DIGIT}{{2,4}}", None, None),
    ("number", rf"[\-+]?{NUM}", None, None),
    ("frac", FRAC, None, "frac"),
    ("tbspec", r"-(?:RRB|LRB|RCB|LCB|RSB|LSB)-|C\.D\.s|(?i:pro|anti)-|S&P-500|S&Ls|(?i:Cap)" + APOS + r"n|c" + APOS
     + r"est", None, None),
    ("thing3", THING3, None, None),
    ("dolsign", r"[A-Z]*\$|#", None, None),
    ("abbrev3", ABBREV3, rf"{SPACE}*{DIGIT}", None),
    ("abbrev1", ABBREV1, None, None),
    ("abbrev2", ABBREV2, None, None),
    ("acro", ACRO, SPACENL, None),
    ("tbspec2", rf"{APOS}[0-9][0-9]", SPACENL, None),
    ("word-period", rf"{LETTER}+\.", INSENTP, None),
    ("dblquot", r'"|&quot;', None, QUOTE),
    ("plus", r"\+", None, None),
    ("percent", r"[%&\u2030\u2031]", None, None),
    ("tilde", r"[~^]", None, None),
    ("bar", r"[|\\]", None, None),
    ("angle", r"[<>]", None, None),
    ("bracket", r"[()\[\]{}]", None, "bracket"),
    ("hyphens", r"-+", None, "hyphens"),
    ("ldots", r"\.{3,5}|(?:\.[ \u00A0]){2,4}\.|[\u0085\u2026]", None, "..."),
    ("fnmarks", r"@+|#+|_+", None, None),
    ("asts", r"\*+", None, None),
    ("insentp", INSENTP, None, None),
    ("exclaim", r"[?!]+", None, None),
    ("period", r"\.", None, None),
    ("equals", r"=", None, None),
    ("slash", r"/", None, None),
    ("hthing-period", rf"{HTHING}\.", INSENTP, None),
    ("hthing", HTHING, None, None),
    ("thing-period", rf"{THING}\.", INSENTP, None),
    ("thing", THING, None, None),
    ("thinga-period", rf"{THINGA}\.", INSENTP, None),
    ("thinga", THINGA, None, None),
    ("invert-quote", r"'", r"[A-Za-z][^ \t\n\r\u00A0]", QUOTE),
    ("redaux-any", REDAUX, None, None),
    ("quotes", QUOTES, None, QUOTE),
    ("misc", MISCSYMBOL, None, None),
    ("space", rf"{SPACENL}+|\x00|[\u200B\u200E\u200F\uFEFF]", None, SKIP),
]
_COMPILED = [(name, re.compile(head), re.compile(tail) if tail else None, out) for name, head, tail, out in RULES]


def _longest(text: str, pos: int) -> tuple[int, int, str, object] | None:
    """(total length with trailing context, token length, rule name, output) of the winning rule."""
    best = None
    for name, head, tail, out in _COMPILED:
        match = head.match(text, pos)
        if match is None:
            continue
        length = match.end() - pos
        total = length
        if tail is not None:
            if length == 0:
                continue
            context = tail.match(text, match.end())
            if context is None:
                continue
            total += context.end() - match.end()
        if length and (best is None or total > best[0]):
            best = (total, length, name, out)
    return best


def ptb_tokens(text: str) -> list[str]:
    """The tokens PTBTokenizer gives `text` (before lower-casing), quotes as `` / ''."""
    tokens, pos = [], 0
    while pos < len(text):
        found = _longest(text, pos)
        if found is None:  # untokenizable: the Java tokeniser deletes it
            pos += 1
            continue
        _, length, name, out = found
        piece = text[pos:pos + length]
        if name == "cannot":
            tokens.append(piece[:3])
            pos += 3
            continue
        pos += length
        if out == SKIP:
            continue
        if out == QUOTE:
            tokens.append("''")
        elif out == "bracket":
            tokens.append(BRACKETS[piece])
        elif out == "hyphens":
            tokens.append("--" if 3 <= len(piece) <= 4 else piece)
        elif out == "frac":  # `3 1/2` is one token with a non-breaking space: two words to CIDEr
            tokens.extend(piece.replace("\u00A0", " ").split(" "))
        elif isinstance(out, str):
            tokens.append(out)
        else:
            tokens.append(piece)
    return tokens
