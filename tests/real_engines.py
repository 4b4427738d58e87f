"""Correct micrograd engines written independently of the reference, each in its own style (test fixtures).

Written for these tests, after the shape of the engine in Karpathy's micrograd lecture, but with
different data structures and visiting orders, so that "correct, written differently" means more than one
way. Each must score full marks; none shares code with reference/micrograd.
"""

# Local derivatives stored on the node, one generic `_backward`; `_prev` a list (duplicates kept: a + a has
# [a, a]); the topological order by an iterative depth-first search with an explicit stack of iterators;
# subtraction and division have their own backward; sigmoid from tanh.
ITERATIVE_DFS = '''
import math


class Value:
    def __init__(self, data, _children=(), _op='', label=''):
        self.data = data
        self.grad = 0.0
        self._backward = lambda: None
        self._prev = list(_children)
        self._op = _op
        self.label = label

    @classmethod
    def _node(cls, data, parents, locals_, op):
        out = cls(data, parents, op)

        def _backward():
            for parent, local in zip(parents, locals_):
                parent.grad += local * out.grad
        out._backward = _backward
        return out

    @staticmethod
    def _v(x):
        return x if isinstance(x, Value) else Value(x)

    def __add__(self, other):
        other = self._v(other)
        return self._node(self.data + other.data, (self, other), (1.0, 1.0), '+')

    def __sub__(self, other):
        other = self._v(other)
        return self._node(self.data - other.data, (self, other), (1.0, -1.0), '-')

    def __mul__(self, other):
        other = self._v(other)
        return self._node(self.data * other.data, (self, other), (other.data, self.data), '*')

    def __truediv__(self, other):
        other = self._v(other)
        return self._node(self.data / other.data, (self, other),
                          (1.0 / other.data, -self.data / other.data ** 2), '/')

    def __pow__(self, k):
        return self._node(self.data ** k, (self,), (k * self.data ** (k - 1),), '**')

    def exp(self):
        e = math.exp(self.data)
        return self._node(e, (self,), (e,), 'exp')

    def log(self):
        return self._node(math.log(self.data), (self,), (1.0 / self.data,), 'log')

    def tanh(self):
        t = math.tanh(self.data)
        return self._node(t, (self,), (1.0 - t * t,), 'tanh')

    def relu(self):
        on = self.data > 0
        return self._node(self.data if on else 0.0, (self,), (1.0 if on else 0.0,), 'relu')

    def sigmoid(self):
        return (self * 0.5).tanh() * 0.5 + 0.5

    def __neg__(self):
        return self * -1.0

    def __radd__(self, other):
        return self._v(other) + self

    def __rsub__(self, other):
        return self._v(other) - self

    def __rmul__(self, other):
        return self._v(other) * self

    def __rtruediv__(self, other):
        return self._v(other) / self

    def backward(self):
        order, done, stack = [], set(), [(self, iter(self._prev))]
        done.add(id(self))
        while stack:
            node, children = stack[-1]
            for child in children:
                if id(child) not in done:
                    done.add(id(child))
                    stack.append((child, iter(child._prev)))
                    break
            else:
                stack.pop()
                order.append(node)
        self.grad = 1.0
        for node in reversed(order):
            node._backward()
'''

# ITERATIVE_DFS keeping its inputs in `children` (a real engine's name), not micrograd's private `_prev`:
# judged through its public behaviour (data, grad, operators, backward()), it loses nothing (issue 17).
CHILDREN_NOT_PREV = ITERATIVE_DFS.replace("self._prev = list(_children)", "self.children = list(_children)") \
    .replace("iter(self._prev)", "iter(self.children)").replace("iter(child._prev)", "iter(child.children)")
assert "_prev" not in CHILDREN_NOT_PREV


# Every Value numbered at creation: a node is always made after its inputs, so visiting the reachable nodes
# from the highest number down is a reverse topological order (no depth-first search at all). `_prev` a
# tuple; relu's gradient from the input; the reflected ops written out.
CREATION_ORDER = '''
import itertools
import math
from collections import deque

_counter = itertools.count()


class Value:
    def __init__(self, data, _children=(), _op='', label=''):
        self.data = float(data)
        self.grad = 0.0
        self._backward = lambda: None
        self._prev = tuple(_children)
        self._op = _op
        self.label = label
        self._n = next(_counter)

    def __add__(self, other):
        other = other if isinstance(other, Value) else Value(other)
        out = Value(self.data + other.data, (self, other), '+')

        def _backward():
            self.grad += out.grad
            other.grad += out.grad
        out._backward = _backward
        return out

    def __mul__(self, other):
        other = other if isinstance(other, Value) else Value(other)
        out = Value(self.data * other.data, (self, other), '*')

        def _backward():
            self.grad += other.data * out.grad
            other.grad += self.data * out.grad
        out._backward = _backward
        return out

    def __pow__(self, k):
        out = Value(self.data ** k, (self,), 'pow')

        def _backward():
            self.grad += k * self.data ** (k - 1) * out.grad
        out._backward = _backward
        return out

    def exp(self):
        out = Value(math.exp(self.data), (self,), 'exp')

        def _backward():
            self.grad += out.data * out.grad
        out._backward = _backward
        return out

    def log(self):
        out = Value(math.log(self.data), (self,), 'log')

        def _backward():
            self.grad += out.grad / self.data
        out._backward = _backward
        return out

    def tanh(self):
        out = Value(math.tanh(self.data), (self,), 'tanh')

        def _backward():
            self.grad += (1 - out.data ** 2) * out.grad
        out._backward = _backward
        return out

    def relu(self):
        out = Value(max(0.0, self.data), (self,), 'relu')

        def _backward():
            self.grad += (1.0 if self.data > 0 else 0.0) * out.grad
        out._backward = _backward
        return out

    def sigmoid(self):
        out = Value(1.0 / (1.0 + math.exp(-self.data)), (self,), 'sigmoid')

        def _backward():
            self.grad += out.data * (1 - out.data) * out.grad
        out._backward = _backward
        return out

    def __neg__(self):
        return -1 * self

    def __radd__(self, other):
        return self + other

    def __sub__(self, other):
        return self + (-1) * other

    def __rsub__(self, other):
        return (-1) * self + other

    def __rmul__(self, other):
        return self * other

    def __truediv__(self, other):
        return self * (other if isinstance(other, Value) else Value(other)) ** -1

    def __rtruediv__(self, other):
        return Value(other) * self ** -1

    def backward(self):
        seen, todo = {id(self): self}, deque([self])
        while todo:
            for child in todo.popleft()._prev:
                if id(child) not in seen:
                    seen[id(child)] = child
                    todo.append(child)
        self.grad = 1.0
        for node in sorted(seen.values(), key=lambda v: v._n, reverse=True):
            node._backward()
'''

# The micrograd lecture's shape, with its recursive build_topo under a raised recursion limit run in a
# thread with a large stack (one way students get past the 100,000-node chain), and tanh built from exp.
RECURSIVE_BIG_STACK = '''
import math
import sys
import threading


class Value:
    def __init__(self, data, _children=(), _op='', label=''):
        self.data = data
        self.grad = 0.0
        self._backward = lambda: None
        self._prev = set(_children)
        self._op = _op
        self.label = label

    def __add__(self, other):
        other = other if isinstance(other, Value) else Value(other)
        out = Value(self.data + other.data, (self, other), '+')

        def _backward():
            self.grad += 1.0 * out.grad
            other.grad += 1.0 * out.grad
        out._backward = _backward
        return out

    def __mul__(self, other):
        other = other if isinstance(other, Value) else Value(other)
        out = Value(self.data * other.data, (self, other), '*')

        def _backward():
            self.grad += other.data * out.grad
            other.grad += self.data * out.grad
        out._backward = _backward
        return out

    def __pow__(self, other):
        out = Value(self.data ** other, (self,), f'**{other}')

        def _backward():
            self.grad += other * (self.data ** (other - 1)) * out.grad
        out._backward = _backward
        return out

    def exp(self):
        out = Value(math.exp(self.data), (self,), 'exp')

        def _backward():
            self.grad += out.data * out.grad
        out._backward = _backward
        return out

    def log(self):
        out = Value(math.log(self.data), (self,), 'log')

        def _backward():
            self.grad += (1.0 / self.data) * out.grad
        out._backward = _backward
        return out

    def tanh(self):
        e = (2 * self).exp()
        return (e - 1) / (e + 1)

    def relu(self):
        out = Value(0 if self.data < 0 else self.data, (self,), 'ReLU')

        def _backward():
            self.grad += (out.data > 0) * out.grad
        out._backward = _backward
        return out

    def sigmoid(self):
        return 1 / (1 + (-self).exp())

    def backward(self):
        topo, visited = [], set()

        def build_topo(v):
            if v not in visited:
                visited.add(v)
                for child in v._prev:
                    build_topo(child)
                topo.append(v)

        limit = sys.getrecursionlimit()
        size = threading.stack_size()
        sys.setrecursionlimit(1_000_000)
        threading.stack_size(256 * 1024 * 1024)
        try:
            worker = threading.Thread(target=build_topo, args=(self,))
            worker.start()
            worker.join()
        finally:
            threading.stack_size(size)
            sys.setrecursionlimit(limit)
        self.grad = 1.0
        for node in reversed(topo):
            node._backward()

    def __neg__(self):
        return self * -1

    def __radd__(self, other):
        return self + other

    def __sub__(self, other):
        return self + (-other)

    def __rsub__(self, other):
        return other + (-self)

    def __rmul__(self, other):
        return self * other

    def __truediv__(self, other):
        return self * other ** -1

    def __rtruediv__(self, other):
        return other * self ** -1
'''

# An nn written another way: Layer always returns a list, MLP unwraps a single output; parameters() with
# itertools.chain; zero_grad per parameter with 0.0; the relu / linear split of micrograd's nn.py.
NN_OTHER_STYLE = '''
import itertools
import random

from micrograd.engine import Value


class Module:
    def zero_grad(self):
        for p in self.parameters():
            p.grad = 0.0

    def parameters(self):
        return []


class Neuron(Module):
    def __init__(self, nin, nonlin=True):
        self.w = [Value(random.uniform(-1, 1)) for _ in range(nin)]
        self.b = Value(0)
        self.nonlin = nonlin

    def __call__(self, x):
        act = self.b
        for wi, xi in zip(self.w, x):
            act = act + wi * xi
        return act.relu() if self.nonlin else act

    def parameters(self):
        return [*self.w, self.b]


class Layer(Module):
    def __init__(self, nin, nout, **kwargs):
        self.neurons = [Neuron(nin, **kwargs) for _ in range(nout)]

    def __call__(self, x):
        return [n(x) for n in self.neurons]

    def parameters(self):
        return list(itertools.chain.from_iterable(n.parameters() for n in self.neurons))


class MLP(Module):
    def __init__(self, nin, nouts):
        sizes = [nin] + list(nouts)
        self.layers = [Layer(a, b, nonlin=i < len(nouts) - 1) for i, (a, b) in enumerate(zip(sizes, sizes[1:]))]

    def __call__(self, x):
        for layer in self.layers:
            x = layer(x)
        return x[0] if len(x) == 1 else x

    def parameters(self):
        return [p for layer in self.layers for p in layer.parameters()]
'''
