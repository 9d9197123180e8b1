"""The registry of library instrumentations, as data: dotted paths of ``Instrumentation`` classes,
imported only when ``instrument()`` runs. The library instrumentations themselves come later."""

# name -> "package.module.ClassName"
_registry: dict[str, str] = {}


def register(name: str, class_path: str) -> None:
    _registry[name] = class_path


def registered() -> dict[str, str]:
    return dict(_registry)
