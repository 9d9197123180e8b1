from oxapm._core import __version__ as VERSION

__all__ = ["VERSION"]
