"""Checks the module graph against the layering in the README (called by scripts/check-layout)."""
import json, sys

# Direct dependencies each library (non-test) target may have. A target missing here fails the check, so a new
# module has to be placed in the layering on purpose.
ALLOWED = {
    "IsoKVSync": set(),
    "IsoKVCore": set(),
    "ConcurrentMaps": {"IsoKVSync"},
    "IsoKVStorage": {"IsoKVSync"},
    "IsoKVHistory": {"IsoKVSync"},
    "IsoKV": {"IsoKVCore", "IsoKVSync", "ConcurrentMaps", "IsoKVStorage"},
    "IsoKVConformance": {"IsoKVCore", "IsoKVSync"},
    "IsoKVWorkloads": {"IsoKVCore", "IsoKVSync", "Histogram"},
    "IsoKVLab": {"IsoKVCore", "IsoKVSync", "IsoKV", "IsoKVConformance", "IsoKVWorkloads"},
    "IsoKVPostgres": {"IsoKVCore", "IsoKVSync", "PostgresNIO"},
    # The lab's SQLite baseline (GRDB): linked by the CLI and the lab's tests only.
    "IsoKVBaseline": {"IsoKV", "IsoKVCore", "IsoKVSync", "IsoKVWorkloads", "GRDB"},
    # The lab's PostgreSQL and HTTP backends: linked by the CLI and the lab's tests, never by IsoKVLab itself, so the
    # experiments stay written against the store contract only.
    "IsoKVLabBackends": {"IsoKVLab", "IsoKV", "IsoKVCore", "IsoKVSync", "IsoKVConformance", "IsoKVPostgres",
                         "IsoKVServer", "IsoKVClient", "PostgresNIO", "AsyncHTTPClient", "Logging"},
    "MapBenchmarks": {"ConcurrentMaps", "IsoKVSync", "IsoKVWorkloads"},
    "IsoKVTestSupport": {"IsoKVCore", "IsoKVWorkloads"},
    "IsoKVClient": {"IsoKVCore", "AsyncHTTPClient", "NIOCore", "NIOHTTP1"},
    "IsoKVServer": {"IsoKV", "IsoKVCore", "IsoKVSync", "Hummingbird", "HummingbirdCore", "HTTPTypes", "Logging", "CoreMetrics", "Metrics", "NIOCore",
                    "NIOHTTPTypes", "Prometheus", "ServiceLifecycle"},
}
# Packages whose products must never be in the embedded engine's dependency closure.
HEAVY = {"Hummingbird", "HummingbirdCore", "AsyncHTTPClient", "PostgresNIO", "NIOCore", "NIOPosix", "ArgumentParser",
         "GRDB"}

d = json.load(sys.stdin)
targets = {t["name"]: t for t in d["targets"]}
errors = []
for name, t in targets.items():
    if t["type"] not in ("library",):
        continue
    deps = set(t.get("target_dependencies", [])) | set(t.get("product_dependencies", []))
    if name not in ALLOWED:
        errors.append(f"{name}: not placed in the layering (add it to scripts/check-layout and the README)")
        continue
    extra = deps - ALLOWED[name]
    if extra:
        errors.append(f"{name} depends on {sorted(extra)}; allowed: {sorted(ALLOWED[name]) or 'nothing'}")

def closure(name, seen):
    for dep in targets.get(name, {}).get("target_dependencies", []):
        if dep not in seen:
            seen.add(dep)
            closure(dep, seen)
    for p in targets.get(name, {}).get("product_dependencies", []):
        seen.add(p)
    return seen

engine = closure("IsoKV", set())
if engine & HEAVY:
    errors.append(f"the embedded engine depends on {sorted(engine & HEAVY)}")
lab = closure("IsoKVLab", set())
if lab & (HEAVY | {"IsoKVPostgres", "IsoKVServer", "IsoKVClient"}):
    errors.append(f"IsoKVLab must take stores through the contract, but depends on "
                  f"{sorted(lab & (HEAVY | {'IsoKVPostgres', 'IsoKVServer', 'IsoKVClient'}))}")
core = closure("IsoKVCore", set())
if core:
    errors.append(f"IsoKVCore must build alone, but depends on {sorted(core)}")

if errors:
    print("layout check FAILED:")
    for e in errors:
        print("  " + e)
    sys.exit(1)
print(f"layout ok: {len(ALLOWED)} library modules within their allowed dependencies; IsoKVCore builds alone; "
      f"the engine depends on {sorted(engine)} only")
