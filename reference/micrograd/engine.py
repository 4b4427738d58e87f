"""A scalar autograd engine, after Karpathy's micrograd.

Every operation on a `Value` builds one node of an expression graph and, side by side with its forward
computation, a `_backward` closure: the chain rule for that node, which adds (`+=`) the node's local
derivative times `out.grad` into the gradient of each input. `backward()` visits the nodes in reverse
topological order, so a node pushes its gradient to its inputs only once every use of it has pushed to it.
"""
import math


class Value:
    """ stores a single scalar value and its gradient """

    def __init__(self, data, _children=(), _op='', label=''):
        self.data = data
        self.grad = 0.0
        # internal variables used for autograd graph construction
        self._backward = lambda: None
        self._prev = set(_children)
        self._op = _op  # the op that produced this node, for graphviz / debugging / etc
        self.label = label

    def __add__(self, other):
        other = other if isinstance(other, Value) else Value(other)
        out = Value(self.data + other.data, (self, other), '+')

        def _backward():
            ### BEGIN SOLUTION
            # d(a+b)/da = d(a+b)/db = 1: addition passes the gradient through unchanged
            self.grad += out.grad
            other.grad += out.grad
            ### END SOLUTION
        out._backward = _backward

        return out

    def __mul__(self, other):
        other = other if isinstance(other, Value) else Value(other)
        out = Value(self.data * other.data, (self, other), '*')

        def _backward():
            ### BEGIN SOLUTION
            # d(a*b)/da = b: each input gets the other's value
            self.grad += other.data * out.grad
            other.grad += self.data * out.grad
            ### END SOLUTION
        out._backward = _backward

        return out

    def __pow__(self, other):
        assert isinstance(other, (int, float)), "only supporting int/float powers for now"
        if self.data == 0 and other < 0:
            raise ZeroDivisionError(f"0 cannot be raised to the negative power {other}")
        if self.data < 0 and other != int(other):
            raise ValueError(f"a negative number ({self.data}) to the fractional power {other} is complex")
        out = Value(self.data**other, (self,), f'**{other}')

        def _backward():
            ### BEGIN SOLUTION
            # d(a**n)/da = n * a**(n-1); at a == 0 the n == 0 term is 0, not 0 * 0**-1
            local = other * self.data**(other - 1) if other != 0 else 0.0
            self.grad += local * out.grad
            ### END SOLUTION
        out._backward = _backward

        return out

    def exp(self):
        if self.data > 709.78:  # math.exp's own error would only say "math range error"
            raise OverflowError(f"exp({self.data}) is larger than the largest float")
        out = Value(math.exp(self.data), (self,), 'exp')

        def _backward():
            ### BEGIN SOLUTION
            # d(e**a)/da = e**a, which is out.data: reuse it instead of recomputing
            self.grad += out.data * out.grad
            ### END SOLUTION
        out._backward = _backward

        return out

    def log(self):
        if self.data <= 0:
            raise ValueError(f"log is only defined for positive numbers, got log({self.data})")
        out = Value(math.log(self.data), (self,), 'log')

        def _backward():
            ### BEGIN SOLUTION
            # d(ln a)/da = 1/a
            self.grad += out.grad / self.data
            ### END SOLUTION
        out._backward = _backward

        return out

    def tanh(self):
        # math.tanh saturates to +-1 for large inputs; (e**2x - 1)/(e**2x + 1) would overflow at x = 355
        t = math.tanh(self.data)
        out = Value(t, (self,), 'tanh')

        def _backward():
            ### BEGIN SOLUTION
            # d(tanh a)/da = 1 - tanh(a)**2: from the output t, not the input a
            self.grad += (1 - t**2) * out.grad
            ### END SOLUTION
        out._backward = _backward

        return out

    def relu(self):
        out = Value(0 if self.data < 0 else self.data, (self,), 'ReLU')

        def _backward():
            ### BEGIN SOLUTION
            # the gradient flows where the unit is on (output > 0), and is 0 where it is off
            self.grad += (out.data > 0) * out.grad
            ### END SOLUTION
        out._backward = _backward

        return out

    def sigmoid(self):
        # 1/(1+e**-a) overflows e**-a for a << 0; there, e**a/(1+e**a) is the same number and safe
        if self.data >= 0:
            s = 1 / (1 + math.exp(-self.data))
        else:
            z = math.exp(self.data)
            s = z / (1 + z)
        out = Value(s, (self,), 'sigmoid')

        def _backward():
            ### BEGIN SOLUTION
            # d(sigmoid a)/da = s * (1 - s), with s the output
            self.grad += s * (1 - s) * out.grad
            ### END SOLUTION
        out._backward = _backward

        return out

    def backward(self):
        """Fill in .grad of every node this one depends on: d self / d node. Visit the nodes in reverse
        topological order (built without recursion: a graph can be 100,000 nodes deep), starting from
        this node's own gradient, d self / d self = 1."""
        ### BEGIN SOLUTION
        # topological order of all of the children in the graph, built with an explicit stack:
        # micrograd's recursive build_topo hits Python's recursion limit (~1,000) on a deep graph
        topo = []
        visited = set()
        stack = [(self, False)]
        while stack:
            v, children_done = stack.pop()
            if children_done:
                topo.append(v)  # every node v depends on is already in topo
            elif v not in visited:
                visited.add(v)
                stack.append((v, True))
                stack.extend((child, False) for child in v._prev if child not in visited)

        # go one variable at a time and apply the chain rule to get its gradient
        self.grad = 1.0
        for v in reversed(topo):
            v._backward()
        ### END SOLUTION

    def __neg__(self):  # -self
        return self * -1

    def __radd__(self, other):  # other + self
        return self + other

    def __sub__(self, other):  # self - other
        return self + (-other)

    def __rsub__(self, other):  # other - self
        return other + (-self)

    def __rmul__(self, other):  # other * self
        return self * other

    def __truediv__(self, other):  # self / other
        return self * other**-1

    def __rtruediv__(self, other):  # other / self
        return other * self**-1

    def __repr__(self):
        return f"Value(data={self.data}, grad={self.grad})"
