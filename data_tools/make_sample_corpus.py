#!/usr/bin/env python3
"""Builds the bundled sample corpus in C4's exact format from the Python docs.

Source: the reStructuredText sources of the Debian package python3.11-doc
(/usr/share/doc/python3.11-doc/html/_sources/**/*.rst.txt). Each section of
each page becomes one document (short sections are merged with the next one);
code blocks, doctests, tables and most directives are dropped and inline
markup is reduced to its text, so what is left is English prose.

Output (deterministic, byte-identical on every run):
  <out>/c4-train.00000-of-00002.json.gz
  <out>/c4-train.00001-of-00002.json.gz
  <out>/c4-validation.00000-of-00001.json.gz
one JSON object per line with "text", "timestamp" and "url", like allenai/c4.

Usage: python3 data_tools/make_sample_corpus.py [--src DIR] [--out data/sample]
"""
import argparse
import gzip
import hashlib
import json
import os
import re
import sys

SRC_DEFAULT = "/usr/share/doc/python3.11-doc/html/_sources"
VAL_PERCENT = 3          # documents whose hash falls below this go to validation
MIN_DOC_CHARS = 800      # shorter sections are merged with the next one
MAX_DOC_CHARS = 20000    # longer sections are cut at a paragraph boundary

# Directives whose body is prose worth keeping; every other directive
# (code-block, index, toctree, literalinclude, ...) is dropped with its body.
KEEP_BODY = {
    "note", "warning", "seealso", "versionadded", "versionchanged", "deprecated",
    "deprecated-removed", "impl-detail", "topic", "sidebar", "rubric", "tip",
    "important", "attention", "caution", "hint", "admonition", "availability",
    "function", "method", "class", "data", "attribute", "exception", "decorator",
    "classmethod", "staticmethod", "coroutinefunction", "coroutinemethod",
    "cmdoption", "envvar", "describe", "opcode", "pdbcommand", "object",
    "abstractmethod", "decoratormethod", "program", "only", "glossary",
}
# Directives whose argument (text after "::") is a sentence rather than a name.
ARG_IS_TEXT = {"note", "warning", "tip", "important", "rubric", "topic", "sidebar",
               "impl-detail", "caution", "hint", "attention", "admonition"}

UNDERLINE = re.compile(r'^([=\-~^*"\'+#`:._])\1{2,}\s*$')
DIRECTIVE = re.compile(r"^(\s*)\.\.\s+([\w:-]+)::\s*(.*)$")
TABLE_LINE = re.compile(r"^\s*(\+[-=+]+\+?|\|.*|=+(\s+=+)+)\s*$")
OPTION_LINE = re.compile(r"^\s*:[\w-]+:(\s.*)?$")
BULLET = re.compile(r"^([*\-+•]|#\.|\d+\.|\(\w\))\s+")

INLINE = [
    (re.compile(r":[\w.:-]+:`~?!?([^`<]*?)\s*<[^>`]*>`"), r"\1"),   # :ref:`text <target>`
    (re.compile(r":[\w.:-]+:`~([\w.]*\.)?([^`]*)`"), r"\2"),          # :func:`~a.b.c` -> c
    (re.compile(r":[\w.:-]+:`!?([^`]*)`"), r"\1"),                    # :role:`text`
    (re.compile(r"``([^`]+)``"), r"\1"),                              # ``literal``
    (re.compile(r"`([^`<]*?)\s*<[^>`]*>`__?"), r"\1"),                # `text <url>`_
    (re.compile(r"`([^`]+)`_{1,2}"), r"\1"),                          # `ref`_
    (re.compile(r"`([^`]+)`"), r"\1"),                                # `default role`
    (re.compile(r"\*\*([^*]+)\*\*"), r"\1"),                          # **strong**
    (re.compile(r"(?<![\w*])\*([^*\s][^*]*?)\*(?![\w*])"), r"\1"),   # *emphasis*
    (re.compile(r"\s*\[(#[\w-]*|\d+)\]_"), ""),                      # footnote refs
    (re.compile(r"\|version\|"), "3.11"),
    (re.compile(r"\|release\|"), "3.11"),
    (re.compile(r"\\ "), ""),                                         # rst "\ " joiner
    (re.compile(r"\\(.)"), r"\1"),                                    # escapes
    (re.compile(r"[ \t]{2,}"), " "),
]


def clean_inline(s):
    for pat, rep in INLINE:
        s = pat.sub(rep, s)
    return s.strip()


def indent_of(line):
    return len(line) - len(line.lstrip(" "))


def parse_page(lines):
    """Returns [(title, [paragraph, ...]), ...], one entry per section."""
    sections = [["", []]]
    para = []
    skip_deeper_than = None   # drop lines indented more than this (and blank lines)
    skip_to_blank = False     # drop lines until the next blank line
    n = len(lines)

    def flush():
        if para:
            text = clean_inline(" ".join(para))
            if len(text) > 1 and re.search(r"[A-Za-z]{2}", text):
                sections[-1][1].append(text)
            para.clear()

    i = 0
    while i < n:
        line = lines[i].expandtabs(8).rstrip()
        stripped = line.strip()
        ind = indent_of(line)
        if skip_to_blank:
            if stripped:
                i += 1
                continue
            skip_to_blank = False
        if skip_deeper_than is not None:
            if not stripped or ind > skip_deeper_than:
                i += 1
                continue
            skip_deeper_than = None
        if not stripped:
            flush()
            i += 1
            continue
        nxt = lines[i + 1].expandtabs(8).rstrip() if i + 1 < n else ""
        if (not UNDERLINE.match(stripped) and UNDERLINE.match(nxt.strip())
                and len(nxt.strip()) >= len(stripped) - 2 and ind == 0):
            flush()
            sections.append([clean_inline(stripped), []])
            i += 2
            continue
        if UNDERLINE.match(stripped):          # overline or transition
            flush()
            i += 1
            continue
        m = DIRECTIVE.match(line)
        if m:
            flush()
            name, arg = m.group(2), m.group(3)
            while lines[i].rstrip().endswith("\\") and i + 1 < n:   # signature continues
                i += 1
            if name not in KEEP_BODY:
                skip_deeper_than = ind
            elif name in ARG_IS_TEXT and arg:
                para.append(arg)
            i += 1
            continue
        if stripped.startswith(".."):           # comment or link target
            flush()
            skip_deeper_than = ind
            i += 1
            continue
        if stripped.startswith(">>>") or stripped.startswith("$ "):
            flush()
            skip_to_blank = True
            i += 1
            continue
        if TABLE_LINE.match(line) or OPTION_LINE.match(line) and "`" not in line:
            flush()
            i += 1
            continue
        if BULLET.match(stripped):
            flush()
            stripped = BULLET.sub("", stripped)
        para.append(stripped)
        if stripped.endswith("::"):             # a literal block follows
            para[-1] = stripped[:-2].rstrip() + (":" if not stripped.endswith(" ::") else "")
            flush()
            skip_deeper_than = ind
        i += 1
    flush()
    return [(t, ps) for t, ps in sections if ps]


def slug(title):
    s = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")
    return s or "top"


def make_documents(src):
    paths = []
    for root, _, files in os.walk(src):
        for f in files:
            if f.endswith(".rst.txt"):
                paths.append(os.path.join(root, f))
    paths.sort()
    docs = []
    for path in paths:
        rel = os.path.relpath(path, src)[: -len(".rst.txt")]
        with open(path, encoding="utf-8", errors="replace") as f:
            sections = parse_page(f.read().split("\n"))
        # Merge short sections forward so a document reads like a web page.
        pending_title, pending = None, []
        for title, paras in sections:
            if pending_title is None:
                pending_title = title
            pending += ([title] if title and title != pending_title else []) + paras
            if sum(len(p) for p in pending) >= MIN_DOC_CHARS:
                docs.extend(split_long(rel, pending_title, pending))
                pending_title, pending = None, []
        if pending:
            if docs and docs[-1]["url"].startswith(url_of(rel, "")) and sum(len(p) for p in pending) < 200:
                docs[-1]["text"] += "\n" + "\n".join(pending)
            else:
                docs.extend(split_long(rel, pending_title, pending))
    return docs


def url_of(rel, anchor):
    return f"https://docs.python.org/3.11/{rel}.html" + (f"#{anchor}" if anchor else "")


def split_long(rel, title, paras):
    out, cur, part = [], [], 0
    head = [title] if title else []
    for p in paras:
        cur.append(p)
        if sum(len(x) for x in cur) >= MAX_DOC_CHARS:
            out.append((part, cur))
            cur, part = [], part + 1
    if cur:
        out.append((part, cur))
    docs = []
    for part, ps in out:
        anchor = slug(title) + (f"-{part}" if part else "") if title else (f"part-{part}" if part else "")
        docs.append({"text": "\n".join((head if part == 0 else []) + ps), "url": url_of(rel, anchor)})
    return docs


def timestamp(url):
    # A fixed, plausible crawl time per URL (C4's crawl was April 2019).
    h = int(hashlib.sha256(url.encode()).hexdigest()[:12], 16)
    day, sec = 1 + h % 30, (h >> 8) % 86400
    return f"2019-04-{day:02d}T{sec // 3600:02d}:{sec // 60 % 60:02d}:{sec % 60:02d}Z"


def write_jsonl_gz(path, docs):
    # mtime=0 and no file name in the header keep the .gz bytes reproducible.
    with open(path + ".tmp", "wb") as raw:
        with gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=9, mtime=0) as gz:
            for d in docs:
                line = json.dumps({"text": d["text"], "timestamp": timestamp(d["url"]), "url": d["url"]},
                                  ensure_ascii=False, separators=(",", ":"))
                gz.write(line.encode("utf-8") + b"\n")
    os.replace(path + ".tmp", path)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--src", default=SRC_DEFAULT)
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "sample"))
    args = ap.parse_args()
    if not os.path.isdir(args.src):
        sys.exit(f"error: {args.src} not found: install the Debian package python3.11-doc "
                 f"(bash scripts/setup.sh does) or pass --src")
    docs = make_documents(args.src)
    # Deduplicate identical texts, then order by a hash of the URL: C4 files
    # are in no particular order, and this keeps the split independent of walk order.
    seen, uniq = set(), []
    for d in docs:
        if d["text"] not in seen:
            seen.add(d["text"])
            uniq.append(d)
    key = lambda d: hashlib.sha256(d["url"].encode()).hexdigest()
    uniq.sort(key=key)
    val, train = [], [[], []]
    for d in uniq:
        h = int(key(d)[:8], 16)
        if h % 100 < VAL_PERCENT:
            val.append(d)
        else:
            train[(h // 100) % 2].append(d)
    os.makedirs(args.out, exist_ok=True)
    for k in range(2):
        write_jsonl_gz(os.path.join(args.out, f"c4-train.{k:05d}-of-00002.json.gz"), train[k])
    write_jsonl_gz(os.path.join(args.out, "c4-validation.00000-of-00001.json.gz"), val)
    chars = sum(len(d["text"]) for d in uniq)
    print(f"{len(uniq)} documents ({chars / 1e6:.1f} M chars): train {len(train[0])} + {len(train[1])}, "
          f"validation {len(val)} -> {args.out}")


if __name__ == "__main__":
    main()
