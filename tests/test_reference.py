"""Reference problems and golden files: closed forms checked independently, the
computed-twice procedure checked against the closed forms, the golden files regenerated
and compared within their stated accuracy, the schema, the field VJPs."""

import json
import math

import numpy as np
import pytest
import scipy.linalg

from refnode.reference import closed_form
from refnode.reference.golden import (ACCURACY_FLOOR, CLOSED_FORM_ACCURACY, DisagreementError,
                                      numerical_values, reference_values, _accuracy)
from refnode.reference.golden_files import (GOLDEN_DIR, SCHEMA_VERSION, as_arrays, golden_record,
                                            load_golden, read_json, write_json)
from refnode.reference.problems import PROBLEM_NAMES, get_problem
from refnode.reference.regenerate import main as regenerate_main
from refnode.testing import check_vjp
from refnode.verify import golden_quantities, relative_error

pytestmark = pytest.mark.verify

CLOSED = [n for n in PROBLEM_NAMES if get_problem(n).closed_form is not None]
NUMERICAL = [n for n in PROBLEM_NAMES if get_problem(n).closed_form is None]


def quantity_errors(values, golden):
    """{quantity: relative error} of ``values`` (reference_values layout) against a golden doc."""
    results = dict(states=values["states"], gradients=values["gradients"], extras=values["extras"])
    errors = {}
    for name, ref, _, path, scale in golden_quantities(golden):
        node = results
        for key in path:
            node = node[key]
        errors[name] = relative_error(node, ref, scale)
    return errors


def accuracies(values):
    """{quantity: stated accuracy} in the order of golden_quantities."""
    acc = values["accuracy"]
    out = {"state": acc["states"], "dL/dz0": acc["gradients"]["z0"]}
    out.update({f"dL/dtheta[{k}]": v for k, v in acc["gradients"]["theta"].items()})
    out.update({f"dL/dt[{i}]": v for i, v in enumerate(acc["gradients"]["t"])})
    out.update(acc.get("extras", {}))
    return out


def test_cotangents_are_the_documented_sines():
    p = get_problem("linear")
    g = p.cotangents
    assert g.shape == (len(p.t),) + p.z0.shape
    # math.sin, one libm call, as the builder does: NumPy's np.sin differs by one ulp
    # between builds (1.24 gives sin(24) = -0.9055783620066237, libm ...239).
    assert g.flat[0] == math.sin(1.0) and g.flat[-1] == math.sin(g.size)
    assert np.all(g != 0.0)


def test_linear_closed_form_matches_scipy_expm_and_frechet():
    p = get_problem("linear")
    states, grads = p.closed_form(p.theta, p.z0, p.t, p.cotangents)
    A, g = p.theta["A"], p.cotangents
    for i, tau in enumerate(p.t - p.t[0]):       # SciPy's expm is the less accurate of the two
        E = scipy.linalg.expm(A * tau)           # here (4e-14 off the 30-digit value at τ = 2)
        assert relative_error(states[i], p.z0 @ E.T) <= CLOSED_FORM_ACCURACY
    dA = sum(scipy.linalg.expm_frechet(A * tau, tau * (g[i].T @ p.z0), compute_expm=False)
             for i, tau in enumerate(p.t - p.t[0]))
    # ⟨dA, E⟩ = Σ_i ⟨g_i, L(Aτ_i, Eτ_i) z0⟩ for every direction E: the adjoint of the Fréchet map.
    E = np.random.default_rng(0).standard_normal(A.shape)
    lhs = np.sum(grads["theta"]["A"] * E)
    rhs = sum(np.sum(g[i] * (p.z0 @ scipy.linalg.expm_frechet(A * tau, E * tau,
                                                              compute_expm=False).T))
              for i, tau in enumerate(p.t - p.t[0]))
    assert abs(lhs - rhs) <= 1e-13 * abs(rhs)
    assert dA.shape == A.shape


def test_linear_closed_form_to_30_digits():
    mpmath = pytest.importorskip("mpmath")
    mpmath.mp.dps = 30
    p = get_problem("linear")
    states, grads = p.closed_form(p.theta, p.z0, p.t, p.cotangents)
    A = mpmath.matrix(p.theta["A"].tolist())
    dz0 = np.zeros_like(p.z0)
    for i, tau in enumerate(p.t - p.t[0]):
        E = np.array((mpmath.expm(A * tau)).tolist(), dtype=float)
        assert relative_error(states[i], p.z0 @ E.T) <= CLOSED_FORM_ACCURACY
        dz0 = dz0 + p.cotangents[i] @ E
    assert relative_error(grads["z0"], dz0) <= CLOSED_FORM_ACCURACY


def test_decay_is_the_linear_case_with_A_equal_minus_k_identity():
    p = get_problem("decay")
    states, grads = p.closed_form(p.theta, p.z0, p.t, p.cotangents)
    A = -float(p.theta["k"]) * np.eye(len(p.z0))
    lin_states, lin = closed_form.linear_closed_form({"A": A}, p.z0, p.t, p.cotangents)
    np.testing.assert_allclose(states, lin_states, rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(grads["z0"], lin["z0"], rtol=1e-13)
    np.testing.assert_allclose(grads["t"], lin["t"], rtol=1e-13)
    # dL/dk = Σ_jk dL/dA_jk ∂A_jk/∂k = −trace(dL/dA)
    assert abs(grads["theta"]["k"] + np.trace(lin["theta"]["A"])) <= 1e-13 * abs(grads["theta"]["k"])


def test_oscillator_explicit_states_agree_with_the_matrix_exponential():
    p = get_problem("oscillator")
    A = closed_form.oscillator_matrix(float(p.theta["omega"]), float(p.theta["zeta"]))
    states = closed_form.oscillator_states(float(p.theta["omega"]), float(p.theta["zeta"]), p.z0, p.t)
    expm_states = np.stack([p.z0 @ scipy.linalg.expm(A * tau).T for tau in p.t - p.t[0]])
    assert relative_error(states, expm_states) <= CLOSED_FORM_ACCURACY
    with pytest.raises(ValueError, match="underdamped"):
        closed_form.oscillator_states(1.0, 1.5, p.z0, p.t)


def test_the_computed_twice_procedure_refuses_the_sensitive_problem():
    """Its discrete adjoint misses ∂L/∂z0[0] at any rtol, so the two computations disagree
    (by 6.9e-6 relative) and nothing would be stored: the cross-check catches it."""
    with pytest.raises(DisagreementError, match="sensitive: dL/dz0"):
        numerical_values(get_problem("sensitive"))


#: Closed forms the procedure is tried on: not ``sensitive`` (above), nor ``stiff`` (15 s, and
#: its states at atol = rtol = 1e-12 disagree by 2.1e-8: the fast mode sits below atol).
BRACKETED = [n for n in CLOSED if n not in ("sensitive", "stiff")]


@pytest.mark.parametrize("name", BRACKETED)
def test_the_computed_twice_procedure_brackets_the_closed_form(name):
    """The accuracy the numerical procedure states really bounds its error (evidence for
    the problems that have no closed form)."""
    p = get_problem(name)
    exact = reference_values(p)
    computed = numerical_values(p)
    golden_like = dict(states=exact["states"], gradients=exact["gradients"], extras=exact["extras"],
                       accuracy=exact["accuracy"])
    errors = quantity_errors(computed, golden_like)
    stated = accuracies(computed)
    for quantity, err in errors.items():
        assert err <= stated[quantity] + CLOSED_FORM_ACCURACY, (quantity, err, stated[quantity])


def test_disagreeing_computations_are_not_stored():
    with pytest.raises(DisagreementError, match="dL/dz0"):
        _accuracy(np.array([1.0, 2.0]), np.array([1.0, 2.001]), "x: dL/dz0")
    assert _accuracy(np.array([1.0]), np.array([1.0]), "same") == ACCURACY_FLOOR


def assert_inputs_match(name, golden, p):
    """The builders give the golden file's inputs bit for bit (they use literals, + − × ÷ and
    sqrt, which IEEE 754 rounds correctly on every CPU), except the cotangents sin(k + 1):
    libm's sin is faithfully rounded everywhere but correctly rounded only on some
    platforms, so those may differ by one unit in the last place (a relative change of
    1e-16 in L, far below every stated accuracy)."""
    for key, value in (("z0", p.z0), ("t", p.t)):
        np.testing.assert_array_equal(golden[key], value, err_msg=f"{name}: {key} drifted")
    for key, value in p.theta.items():
        np.testing.assert_array_equal(golden["parameters"][key], value, err_msg=f"{name}: {key}")
    np.testing.assert_array_max_ulp(golden["cotangents"], p.cotangents, maxulp=1)


def test_golden_times_use_only_correctly_rounded_operations():
    """backward's t_k = 5 (1 − (k/24)^1.5) is built as x·sqrt(x): the same bits on every CPU.
    NumPy's SIMD ``**`` gave t_22 = 0.6117924227834509 on AVX-512 CPUs and ...504 elsewhere."""
    expected = [5.0 * (1.0 - (k / 24.0) * math.sqrt(k / 24.0)) for k in range(25)]
    assert get_problem("backward").t.tolist() == expected
    assert load_golden("backward")["t"] == expected
    assert get_problem("backward").cotangents.flat[22] == math.sin(23)


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n == "relu" else n
                                  for n in PROBLEM_NAMES])
def test_golden_file_regenerates_within_its_accuracy(name):
    """Closed forms regenerate at full accuracy; the others at a looser tolerance, so the two
    must agree within the sum of the two stated accuracies."""
    golden = as_arrays(load_golden(name))
    p = get_problem(name)
    loose = dict(rtol=1e-10, adjoint_rtol=1e-9, state_check_rtol=1e-9)
    if p.nonsmooth:              # across the switches even 1e-11 leaves the two 1.1e-8 apart
        loose = dict(spread=False)
    values = reference_values(p, **({} if p.closed_form else loose))
    assert_inputs_match(name, golden, p)
    stated_new, stated_old = accuracies(values), accuracies(golden)
    for quantity, err in quantity_errors(values, golden).items():
        assert err <= stated_new[quantity] + stated_old[quantity], (name, quantity, err)


def test_golden_files_follow_the_schema():
    jsonschema = pytest.importorskip("jsonschema")
    schema = read_json(GOLDEN_DIR / "schema.json")
    jsonschema.Draft202012Validator.check_schema(schema)
    for name in PROBLEM_NAMES:
        document = load_golden(name)
        jsonschema.validate(document, schema)
        assert document["schema_version"] == SCHEMA_VERSION and document["name"] == name
        bad = dict(document, accuracy={"states": 0.0, "gradients": document["accuracy"]["gradients"]})
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, schema)


def test_golden_json_round_trips_float64_exactly(tmp_path):
    p = get_problem("spiral")
    values = reference_values(p, rtol=1e-10, adjoint_rtol=1e-9, state_check_rtol=1e-9)
    write_json(tmp_path / "spiral.json", golden_record(p, values, "test"))
    back = as_arrays(load_golden("spiral", tmp_path))
    np.testing.assert_array_equal(back["states"], values["states"])
    np.testing.assert_array_equal(back["gradients"]["theta"]["A"], values["gradients"]["theta"]["A"])
    assert not list(tmp_path.glob("*.tmp"))


def test_regenerate_command_writes_the_named_problems(tmp_path, capsys):
    assert regenerate_main(["decay", "--out", str(tmp_path)]) == 0
    assert "decay.json" in capsys.readouterr().out
    # The same computation in this process, written by hand: equal bit for bit. (The
    # committed file came from another machine, where exp may round differently; it is
    # held to its stated accuracy by test_golden_file_regenerates_within_its_accuracy.)
    from refnode import __version__
    p = get_problem("decay")
    write_json(tmp_path / "expected.json", golden_record(p, reference_values(p), __version__))
    assert json.loads((tmp_path / "decay.json").read_text()) == \
        json.loads((tmp_path / "expected.json").read_text())
    assert load_golden("decay", tmp_path)["t"] == load_golden("decay")["t"]
    with pytest.raises(SystemExit):
        regenerate_main(["nonsense", "--out", str(tmp_path)])


def test_old_schema_versions_are_refused(tmp_path):
    document = dict(load_golden("decay"), schema_version="0.1")
    write_json(tmp_path / "decay.json", document)
    with pytest.raises(ValueError, match="schema version"):
        load_golden("decay", tmp_path)


@pytest.mark.parametrize("name", PROBLEM_NAMES)
def test_field_vjps_pass_the_dot_product_test(name):
    p = get_problem(name)
    t = float(p.t[1])
    fun = lambda z, theta, t: p.f(t, z, theta)               # noqa: E731
    vjp = lambda a, z, theta, t: p.f.vjp(t, z, theta, a)     # noqa: E731
    z = p.z0 + 0.1 * np.cos(np.arange(p.z0.size)).reshape(p.z0.shape)
    check_vjp(fun, vjp, (z, p.theta, np.array(t)), names=("z", "theta", "t"))


def test_unknown_problem_names_are_input_errors():
    with pytest.raises(ValueError, match="choose one of"):
        get_problem("lorenz")


def test_the_relu_golden_file_states_a_spread_wider_for_discrete_gradients():
    """Across the field's switches the discrete gradient converges far more slowly than the
    adjoint: the stored spread says so at every rtol, and both shrink with rtol."""
    spread = load_golden("relu")["expected_spread"]
    assert spread["rtol"] == [1e-4, 1e-7, 1e-10]
    for adjoint, discrete in zip(spread["gradients_adjoint"], spread["gradients_discrete"]):
        assert discrete > 10 * adjoint
    assert spread["gradients_discrete"] == sorted(spread["gradients_discrete"], reverse=True)
    assert spread["gradients_discrete"][1] > 100 * 1e-7     # no pass/fail rule C · rtol
