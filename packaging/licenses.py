#!/usr/bin/env python3
"""Copies the licence files of every crate linked into pagehook into DIR.

usage: licenses.py DIR [TARGET]

Reads the resolved dependency graph (`cargo metadata`, for TARGET or the
host), follows normal dependencies from the pagehook package (build and dev
dependencies and procedural macros are not linked in), and for each crate copies its LICENSE*,
LICENCE*, COPYING*, NOTICE* and UNLICENSE files into DIR/<name>-<version>/.
DIR/index.tsv lists every crate with its declared licence expression and
the files found; a crate that ships none is listed with none, never
guessed.
"""
import json, os, shutil, subprocess, sys

out = sys.argv[1]
target = sys.argv[2] if len(sys.argv) > 2 else None
root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
cmd = ['cargo', 'metadata', '--format-version', '1', '--locked',
       '--manifest-path', os.path.join(root, 'Cargo.toml')]
if target:
    cmd += ['--filter-platform', target]
meta = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
packages = {p['id']: p for p in meta['packages']}
nodes = {n['id']: n for n in meta['resolve']['nodes']}
start = next(p['id'] for p in meta['packages'] if p['name'] == 'pagehook')
seen, todo = set(), [start]
while todo:
    pid = todo.pop()
    if pid in seen:
        continue
    seen.add(pid)
    for dep in nodes[pid]['deps']:
        # Procedural macros run in the compiler; none of their code is linked in.
        if any('proc-macro' in t['kind'] for t in packages[dep['pkg']]['targets']):
            continue
        if any(k['kind'] is None for k in dep['dep_kinds']):
            todo.append(dep['pkg'])

os.makedirs(out, exist_ok=True)
prefixes = ('license', 'licence', 'copying', 'notice', 'unlicense')
rows = []
for pid in sorted(seen, key=lambda i: (packages[i]['name'], packages[i]['version'])):
    p = packages[pid]
    here = os.path.dirname(p['manifest_path'])
    files = sorted(f for f in os.listdir(here)
                   if f.lower().startswith(prefixes) and os.path.isfile(os.path.join(here, f)))
    if p['name'] == 'pagehook':
        here, files = root, ['LICENSE']
    if p.get('license_file'):
        lf = os.path.join(os.path.dirname(p['manifest_path']), p['license_file'])
        if os.path.isfile(lf) and os.path.basename(lf) not in files:
            files.append(os.path.relpath(lf, here))
    dest = os.path.join(out, f"{p['name']}-{p['version']}")
    os.makedirs(dest, exist_ok=True)
    for f in files:
        shutil.copyfile(os.path.join(here, f), os.path.join(dest, os.path.basename(f)))
    rows.append((p['name'], p['version'], p.get('license') or '', ' '.join(os.path.basename(f) for f in files) or 'none'))
with open(os.path.join(out, 'index.tsv'), 'w') as f:
    f.write('crate\tversion\tlicense\tfiles\n')
    for r in rows:
        f.write('\t'.join(r) + '\n')
print(f'{len(rows)} crates, licences in {out}')
