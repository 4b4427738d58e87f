"""micrograd: a scalar autograd engine (`engine.Value`) and a tiny neural-net library on top (`nn`)."""
