"""Map the design card's top-level folders onto one installed namespace.

`actors/`, `bus/` and `adapters/` install as `posbus.actors`, `posbus.bus` and
`posbus.adapters` (setuptools `package-dir`), so no generic top-level names land
in site-packages. Sub-packages are discovered, so a new folder needs no edit here.
"""

from setuptools import find_packages, setup

_TOP = ("actors", "bus", "adapters")

package_dir = {}
for top in _TOP:
    for sub in ["", *(f".{name}" for name in find_packages(top))]:
        package_dir[f"posbus.{top}{sub}"] = f"{top}{sub}".replace(".", "/")

setup(packages=sorted(package_dir), package_dir=package_dir)
