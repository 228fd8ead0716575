"""The platform stack: one module per component, wired together by `program.build_platform`."""
