"""Run every benchmark module in this package (or those named on the command line) and print figures."""
import importlib
import pkgutil
import sys
import traceback
from pathlib import Path


def main(names: list[str]) -> int:
    here = Path(__file__).parent
    modules = names or sorted(m.name for m in pkgutil.iter_modules([str(here)]) if not m.name.startswith("_"))
    failed = []
    for name in modules:
        print(f"\n== {name} ==", flush=True)
        try:
            importlib.import_module(f"benchmarks.{name}").main()
        except Exception:  # one benchmark's failure: say so, measure the others, exit non-zero at the end
            traceback.print_exc()
            failed.append(name)
    if failed:
        print(f"\nfailed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
