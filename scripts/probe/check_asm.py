#!/usr/bin/env python3
"""Walk the call graph of x86-64 assembly from root functions and report reference-counting calls.

Usage: check_asm.py FILE.s --root NAME [--root NAME...] [--allow-slow SUBSTRING...]
A root is matched by substring against demangled function names. Functions whose demangled name contains an
--allow-slow substring are not entered (documented slow paths). Exit 1 if any reachable function calls a
retain/release entry point of the Swift runtime.
"""
import argparse, re, subprocess, sys

RC = re.compile(r'\b(swift_(?:retain|release|bridgeObjectRetain|bridgeObjectRelease|unknownObjectRetain|'
                r'unknownObjectRelease|nonatomic_retain|nonatomic_release)(?:_n)?|objc_retain|objc_release)\b')

def parse(path):
    funcs, cur = {}, None
    for line in open(path):
        m = re.match(r'^([A-Za-z_$.][\w$.]*):', line)
        if m and not m.group(1).startswith('.L'):
            cur = m.group(1); funcs.setdefault(cur, [])
            continue
        if cur is not None:
            funcs[cur].append(line.strip())
    return funcs

def demangle(names):
    try:
        p = subprocess.run(['swift', 'demangle', '--simplified'], input='\n'.join(names), capture_output=True, text=True)
        out = p.stdout.splitlines()
        if len(out) == len(names):
            return dict(zip(names, out))
    except OSError:
        pass
    return {n: n for n in names}

funcs, dem = {}, {}

def main():
    global funcs, dem
    ap = argparse.ArgumentParser()
    ap.add_argument('asm'); ap.add_argument('--root', action='append', required=True)
    ap.add_argument('--allow-slow', action='append', default=[])
    ap.add_argument('--must-fail', action='append', default=[], help='self-test root that must show a retain')
    a = ap.parse_args()
    funcs.update(parse(a.asm))
    dem.update(demangle(list(funcs)))
    rc = 0
    for r in a.root:
        rc |= check(a, [r], expect_clean=True)
    for r in a.must_fail:
        rc |= check(a, [r], expect_clean=False)
    return rc

def check(a, root_names, expect_clean):
    roots = [f for f in funcs if any(r + '(' in dem[f] for r in root_names) and 'probe' in dem[f]]
    missing = [r for r in root_names if not any(r in dem[f] for f in roots)]
    if missing:
        print(f'probe: root function(s) not found in assembly: {missing}'); return 1
    seen, stack, bad, external = set(), list(roots), [], set()
    while stack:
        f = stack.pop()
        if f in seen: continue
        seen.add(f)
        for ins in funcs[f]:
            m = re.match(r'^(call\w*|jmp\w*|j\w+)\s+\*?\(?([\w$.@]+)\)?', ins)
            if not m: continue
            target = m.group(2).split('@')[0]
            if target not in funcs and not RC.search(target) and not target.startswith('.L'):
                external.add(target)
            if RC.search(target):
                bad.append((dem[f], target)); continue
            if target in funcs and not any(s in dem.get(target, '') for s in a.allow_slow):
                stack.append(target)
    for r in roots:
        print(f'probe root: {dem[r]}')
    print(f'probe: {len(seen)} reachable function(s) checked:')
    for f in sorted(seen): print(f'  {dem[f]}')
    ext = demangle(sorted(external))
    if external: print('probe: external calls (bodies not visible):')
    for e in sorted(external): print(f'  {ext[e]}')
    for f, t in bad:
        print(f'probe: {t} called from {f}')
    if not expect_clean:
        if bad:
            print('probe: self-test OK (the checker sees retains where they are)'); return 0
        print('probe: FAIL self-test: no retain found in a function that must retain'); return 1
    if bad:
        print('probe: FAIL retain/release on a load path'); return 1
    print('probe: no retain/release on the load path')
    return 0

sys.exit(main())
