"""Code generation from the lowered IR: the module pieces that
compiler/passes/codegen.py assembles (functions.py, vectors.py, values.py,
llvm_types.py, runtime_abi.py) and the back end (backend.py: LLVM
optimization, object emission, linking)."""
