# %% [markdown]
# # Linear algebra
#
# Placeholder.

# %% setup id=setup
import numpy as np
from graders.kernel import setup
from graders.asserts import assert_close
setup()

# %% answer id=softmax
def softmax(x, axis=-1):
    ### BEGIN SOLUTION
    z = x - np.max(x, axis=axis, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=axis, keepdims=True)
    ### END SOLUTION

# %% test id=test_softmax points=2
assert_close(softmax(np.array([0.0, 0.0])), np.array([0.5, 0.5]), rtol=0, atol=1e-12)
### BEGIN HIDDEN TESTS
assert_close(softmax(np.array([1000.0, 1000.0])), np.array([0.5, 0.5]), rtol=0, atol=1e-12)
### END HIDDEN TESTS
