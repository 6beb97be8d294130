"""An example bank built only on the framework's public API: copy from it."""
