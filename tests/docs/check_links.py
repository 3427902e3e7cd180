#!/usr/bin/python3
"""The documentation's link check (ctest `docs_links`).

Users read README.md, docs/*.md and the READMEs next to the code; the documentation must stand on
its own.  This script checks two things:

1. Every relative Markdown link `[text](path)` or `[text](path#anchor)` in README.md,
   runtime/README.md, docs/*.md and tests/*/README*.md resolves: the file (or folder) exists,
   and an anchor names a heading of the target Markdown file (or of the same file for
   `(#anchor)`), with GitHub's rule for turning a heading into an anchor.  Links inside code
   blocks and code spans are not links.  http(s) and mailto links are not checked (no network).
2. No user-facing file (those Markdown files, lang/, examples/) refers to the project's internal
   specification: `../shared`, `shared/spec`, `peer-losses`, or a section number of a spec file
   (`algorithms.md §4`, `language.md §6`).

Before checking the repository it runs a self-test on a temporary tree with a good file, a
broken link, a broken anchor and a spec reference, and fails unless exactly the broken ones are
reported: a checker that cannot fail proves nothing.

Usage: check_links.py [ROOT]   (default: the repository containing this script).  Exit 0 when
everything resolves, 1 with one line per problem (FILE:LINE: ...), 2 when the self-test fails.
"""

import glob
import os
import re
import sys
import tempfile

LINK = re.compile(r"!?\[([^\]]*)\]\(\s*<?([^)\s>]*)>?(?:\s+\"[^\"]*\")?\s*\)")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
FENCE = re.compile(r"^\s*(```|~~~)")
CODE_SPAN = re.compile(r"(`+)((?:(?!\n[ \t]*\n).)+?)\1", re.S)
SPEC_REF = re.compile(r"\.\./shared|shared/spec|peer-losses|(?:algorithms|language)\.md`?\s*§")


def slug(text):
    """GitHub's anchor for a heading: inline markup dropped, lower case, every character that is
    not a letter, digit, space, hyphen or underscore removed, spaces turned into hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)  # a link in a heading: its text
    text = text.replace("`", "").replace("*", "")
    out = []
    for ch in text.strip().lower():
        if ch.isalnum() or ch in "-_":
            out.append(ch)
        elif ch == " ":
            out.append("-")
    return "".join(out)


def lines_outside_code(text):
    """(line number, line) for every line outside fenced code blocks, with code spans (which may
    run over a line break inside a paragraph) blanked out."""
    kept, fenced = [], False
    for line in text.split("\n"):
        if FENCE.match(line):
            fenced = not fenced
            kept.append("")
        else:
            kept.append("" if fenced else line)
    body = CODE_SPAN.sub(lambda m: re.sub(r"[^\n]", " ", m.group(0)), "\n".join(kept))
    for n, line in enumerate(body.split("\n"), 1):
        yield n, line


def anchors(path, cache):
    """The set of anchors of Markdown file PATH (duplicates get -1, -2, ... as on GitHub)."""
    if path not in cache:
        seen, out = {}, set()
        with open(path, encoding="utf-8") as f:
            text = f.read()
        for _, line in lines_outside_code(text):
            m = HEADING.match(line)
            if not m:
                continue
            s = slug(m.group(2))
            k = seen.get(s, 0)
            seen[s] = k + 1
            out.add(s if k == 0 else "%s-%d" % (s, k))
        cache[path] = out
    return cache[path]


def check_links(path, root, cache):
    problems = []
    with open(path, encoding="utf-8") as f:
        text = f.read()
    rel = os.path.relpath(path, root)
    for n, line in lines_outside_code(text):
        for m in LINK.finditer(line):
            target = m.group(2)
            if not target or re.match(r"^[a-z][a-z0-9+.-]*:", target):
                continue  # empty, or a URL scheme (http:, https:, mailto:)
            file_part, _, anchor = target.partition("#")
            dest = path if not file_part else os.path.normpath(
                os.path.join(os.path.dirname(path), file_part))
            if not os.path.exists(dest):
                problems.append("%s:%d: broken link `%s`: %s does not exist"
                                % (rel, n, target, os.path.relpath(dest, root)))
                continue
            if anchor and dest.endswith(".md") and anchor not in anchors(dest, cache):
                problems.append("%s:%d: broken anchor `%s`: %s has no heading with that anchor"
                                % (rel, n, target, os.path.relpath(dest, root)))
    return problems


def check_spec_refs(path, root):
    problems = []
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().split("\n")
    except UnicodeDecodeError:
        return problems
    for n, line in enumerate(lines, 1):
        m = SPEC_REF.search(line)
        if m:
            problems.append("%s:%d: refers to the internal specification (`%s`); point to docs/ "
                            "instead" % (os.path.relpath(path, root), n, m.group(0)))
    return problems


def markdown_files(root):
    files = [os.path.join(root, "README.md"), os.path.join(root, "runtime", "README.md")]
    files += sorted(glob.glob(os.path.join(root, "docs", "*.md")))
    files += sorted(glob.glob(os.path.join(root, "tests", "*", "README*.md")))
    return [f for f in files if os.path.isfile(f)]


def user_files(root):
    files = markdown_files(root)
    for sub in ("lang", "examples"):
        for d, _, names in os.walk(os.path.join(root, sub)):
            files += [os.path.join(d, n) for n in sorted(names)]
    return files


def check(root):
    cache, problems = {}, []
    for f in markdown_files(root):
        problems += check_links(f, root, cache)
    for f in user_files(root):
        problems += check_spec_refs(f, root)
    return problems


def self_test():
    """A small tree with one problem of each kind; the checker must find exactly those."""
    with tempfile.TemporaryDirectory() as root:
        os.makedirs(os.path.join(root, "docs"))
        os.makedirs(os.path.join(root, "examples"))

        def write(rel, text):
            with open(os.path.join(root, rel), "w", encoding="utf-8") as f:
                f.write(text)

        write("README.md", "# Top\n\nSee [the guide](docs/guide.md#second-part), "
              "[a folder](docs), [the web](https://example.org/x.md) and `[code](nowhere.md)`.\n"
              "A [missing file](docs/nope.md).\n\n```\n[in a block](gone.md)\n```\n")
        write("docs/guide.md", "# Guide\n\n## Second part\n\n## Second part\n\n"
              "Back to [the top](../README.md#top), [the copy](#second-part-1), "
              "[a bad anchor](#third-part).\n")
        write("examples/a.rein", "# Source: ../shared/spec/algorithms.md\nloss = 0;\n")
        got = sorted(p.split(": ")[0] + ": " + p.split(": ")[1].split(" ")[0]
                     for p in check(root))
    want = sorted(["README.md:4: broken", "docs/guide.md:7: broken",
                   "examples/a.rein:1: refers"])
    if got != want:
        print("check_links: self-test failed: expected %s, got %s" % (want, got), file=sys.stderr)
        return False
    cases = {"The batch file": "the-batch-file", "GRPO's loss (v2)": "grpos-loss-v2",
             "`rein eval`: output": "rein-eval-output", "Step 2: DAPO's soft overlong penalty":
             "step-2-dapos-soft-overlong-penalty"}
    for text, want_slug in cases.items():
        if slug(text) != want_slug:
            print("check_links: self-test failed: slug(%r) = %r, expected %r"
                  % (text, slug(text), want_slug), file=sys.stderr)
            return False
    return True


def main():
    root = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else
                           os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
    if not self_test():
        return 2
    problems = check(root)
    for p in problems:
        print(p)
    if problems:
        print("check_links: %d problem(s)" % len(problems), file=sys.stderr)
        return 1
    n = len(markdown_files(root))
    print("check_links: every relative link and anchor of %d Markdown files resolves; no "
          "user-facing file refers to the internal specification" % n)
    return 0


if __name__ == "__main__":
    sys.exit(main())
