"""A tiny neural-net library on top of the scalar engine, after micrograd's nn.py."""
import random

from micrograd.engine import Value


class Module:

    def zero_grad(self):
        ### BEGIN SOLUTION
        for p in self.parameters():
            p.grad = 0
        ### END SOLUTION

    def parameters(self):
        return []


class Neuron(Module):

    def __init__(self, nin, nonlin=True):
        self.w = [Value(random.uniform(-1, 1)) for _ in range(nin)]
        self.b = Value(0)
        self.nonlin = nonlin

    def __call__(self, x):
        """w . x + b, then the nonlinearity: relu, none on the output layer (micrograd's nn.py). The lecture's
        Neuron, `out = act.tanh()` on every layer, is graded as the network it is and scores the same."""
        ### BEGIN SOLUTION
        act = sum((wi * xi for wi, xi in zip(self.w, x)), self.b)
        return act.relu() if self.nonlin else act
        ### END SOLUTION

    def parameters(self):
        ### BEGIN SOLUTION
        return self.w + [self.b]
        ### END SOLUTION

    def __repr__(self):
        return f"{'ReLU' if self.nonlin else 'Linear'}Neuron({len(self.w)})"


class Layer(Module):

    def __init__(self, nin, nout, **kwargs):
        self.neurons = [Neuron(nin, **kwargs) for _ in range(nout)]

    def __call__(self, x):
        out = [n(x) for n in self.neurons]
        return out[0] if len(out) == 1 else out

    def parameters(self):
        ### BEGIN SOLUTION
        return [p for n in self.neurons for p in n.parameters()]
        ### END SOLUTION

    def __repr__(self):
        return f"Layer of [{', '.join(str(n) for n in self.neurons)}]"


class MLP(Module):

    def __init__(self, nin, nouts):
        sz = [nin] + nouts
        self.layers = [Layer(sz[i], sz[i + 1], nonlin=i != len(nouts) - 1) for i in range(len(nouts))]

    def __call__(self, x):
        for layer in self.layers:
            x = layer(x)
        return x

    def parameters(self):
        ### BEGIN SOLUTION
        return [p for layer in self.layers for p in layer.parameters()]
        ### END SOLUTION

    def __repr__(self):
        return f"MLP of [{', '.join(str(layer) for layer in self.layers)}]"
