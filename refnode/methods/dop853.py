"""DOP853: Dormand–Prince 8(5,3) as modified by Hairer, propagating the 8th-order solution.

Coefficients: E. Hairer's Fortran code dop853.f (the method of HNW I, 2nd ed., §II.10;
cross-checked against SciPy's dop853_coefficients.py), which adapts P. J. Prince and
J. R. Dormand, High order embedded Runge-Kutta formulae, J. Comput. Appl. Math. 7 (1981)
67-75. They are published only as 30-digit decimals, so they are floats here with every
printed digit. Keys below are Hairer's 1-based indices: ``A_SPARSE[i][j]`` is his
``Aij``, ``b_SPARSE[i]`` his ``Bi``.

The method has 12 stages; here it is a 13-stage FSAL table whose 13th stage is
f(t + h, y_1) (a_13,j = b_j, c_13 = 1, b_13 = 0). Hairer's code evaluates that stage
anyway, for the next step and for the dense output.

Two embedded solutions, both of the 12 stages (b_13 = 0 for both):

* ``b_hat`` of order 5: Hairer prints its error weights ``ERi`` = b_i - b̂_i;
* ``b_hat3`` of order 3: Hairer prints b̂3 directly as ``BHH1, BHH2, BHH3`` at stages
  1, 9, 12. The float error weights are ``e3_float`` = b - b̂3.

Error estimate (dop853.f, the sums ``ERR``, ``ERR2`` and ``DENO = ERR + 0.01*ERR2``):
with E5 = ‖h Σ e_i k_i‖ and E3 = ‖h Σ e3_i k_i‖ in the weighted RMS norm of the step-size
control (scale atol + rtol·max(|y|, |y_1|)), the step is accepted when

    err = E5² / sqrt(E5² + 0.01 · E3²) <= 1,

which behaves like O(h^8) for small h (E5 = O(h^6), E3 = O(h^4)): a step-size
controller should use the exponent 1/8 (Hairer: ``EXPO1 = 1/8 - BETA·0.2``).

Dense output: Hairer's 7th-order continuous extension, which needs three extra stages
(14, 15, 16; nodes 0.1, 0.2, 7/9) and the coefficients ``D4j..D7j``; converted to the
P-matrix form over all 16 stages by :func:`refnode.tableau.hairer_dense_output`.
"""

from dataclasses import dataclass, field

from refnode.backend import array_module
from refnode.errors import InputError
from refnode.rk_step import weighted_sum
from refnode.tableau import ButcherTableau, _error_weights, hairer_dense_output, sparse_terms

#: Weight of E3² in the combined estimate (dop853.f: ``DENO = ERR + 0.01*ERR2``).
ERR3_WEIGHT = 0.01

N_STAGES = 13          # 12 stages + the FSAL stage f(t + h, y_1)
N_STAGES_DENSE = 16    # + three stages for the 7th-order interpolant

c = [0.0,
     0.526001519587677318785587544488e-01,
     0.789002279381515978178381316732e-01,
     0.118350341907227396726757197510e+00,
     0.281649658092772603273242802490e+00,
     0.333333333333333333333333333333e+00,
     0.25e+00,
     0.307692307692307692307692307692e+00,
     0.651282051282051282051282051282e+00,
     0.6e+00,
     0.857142857142857142857142857142e+00,
     1.0,
     1.0,                                   # FSAL stage
     0.1e+00,                               # dense-output stages 14, 15, 16
     0.2e+00,
     0.777777777777777777777777777778e+00]

# Rows 2..12 and the dense-output rows 14..16 (row 13 is b); missing entries are 0.
A_SPARSE = {
     2: { 1: 5.26001519587677318785587544488e-2},
     3: { 1: 1.97250569845378994544595329183e-2,
          2: 5.91751709536136983633785987549e-2},
     4: { 1: 2.95875854768068491816892993775e-2,
          3: 8.87627564304205475450678981324e-2},
     5: { 1: 2.41365134159266685502369798665e-1,
          3: -8.84549479328286085344864962717e-1,
          4: 9.24834003261792003115737966543e-1},
     6: { 1: 3.7037037037037037037037037037e-2,
          4: 1.70828608729473871279604482173e-1,
          5: 1.25467687566822425016691814123e-1},
     7: { 1: 3.7109375e-2,
          4: 1.70252211019544039314978060272e-1,
          5: 6.02165389804559606850219397283e-2,
          6: -1.7578125e-2},
     8: { 1: 3.70920001185047927108779319836e-2,
          4: 1.70383925712239993810214054705e-1,
          5: 1.07262030446373284651809199168e-1,
          6: -1.53194377486244017527936158236e-2,
          7: 8.27378916381402288758473766002e-3},
     9: { 1: 6.24110958716075717114429577812e-1,
          4: -3.36089262944694129406857109825,
          5: -8.68219346841726006818189891453e-1,
          6: 2.75920996994467083049415600797e1,
          7: 2.01540675504778934086186788979e1,
          8: -4.34898841810699588477366255144e1},
    10: { 1: 4.77662536438264365890433908527e-1,
          4: -2.48811461997166764192642586468,
          5: -5.90290826836842996371446475743e-1,
          6: 2.12300514481811942347288949897e1,
          7: 1.52792336328824235832596922938e1,
          8: -3.32882109689848629194453265587e1,
          9: -2.03312017085086261358222928593e-2},
    11: { 1: -9.3714243008598732571704021658e-1,
          4: 5.18637242884406370830023853209,
          5: 1.09143734899672957818500254654,
          6: -8.14978701074692612513997267357,
          7: -1.85200656599969598641566180701e1,
          8: 2.27394870993505042818970056734e1,
          9: 2.49360555267965238987089396762,
         10: -3.0467644718982195003823669022},
    12: { 1: 2.27331014751653820792359768449,
          4: -1.05344954667372501984066689879e1,
          5: -2.00087205822486249909675718444,
          6: -1.79589318631187989172765950534e1,
          7: 2.79488845294199600508499808837e1,
          8: -2.85899827713502369474065508674,
          9: -8.87285693353062954433549289258,
         10: 1.23605671757943030647266201528e1,
         11: 6.43392746015763530355970484046e-1},
    14: { 1: 5.61675022830479523392909219681e-2,
          7: 2.53500210216624811088794765333e-1,
          8: -2.46239037470802489917441475441e-1,
          9: -1.24191423263816360469010140626e-1,
         10: 1.5329179827876569731206322685e-1,
         11: 8.20105229563468988491666602057e-3,
         12: 7.56789766054569976138603589584e-3,
         13: -8.298e-3},
    15: { 1: 3.18346481635021405060768473261e-2,
          6: 2.83009096723667755288322961402e-2,
          7: 5.35419883074385676223797384372e-2,
          8: -5.49237485713909884646569340306e-2,
         11: -1.08347328697249322858509316994e-4,
         12: 3.82571090835658412954920192323e-4,
         13: -3.40465008687404560802977114492e-4,
         14: 1.41312443674632500278074618366e-1},
    16: { 1: -4.28896301583791923408573538692e-1,
          6: -4.69762141536116384314449447206,
          7: 7.68342119606259904184240953878,
          8: 4.06898981839711007970213554331,
          9: 3.56727187455281109270669543021e-1,
         13: -1.39902416515901462129418009734e-3,
         14: 2.9475147891527723389556272149,
         15: -9.15095847217987001081870187138},
}

b_SPARSE = { 1: 5.42937341165687622380535766363e-2,
             6: 4.45031289275240888144113950566,
             7: 1.89151789931450038304281599044,
             8: -5.8012039600105847814672114227,
             9: 3.1116436695781989440891606237e-1,
            10: -1.52160949662516078556178806805e-1,
            11: 2.01365400804030348374776537501e-1,
            12: 4.47106157277725905176885569043e-2}

# Hairer's ERi = b_i - b̂_i for the 5th-order embedded solution.
b_minus_b_hat5_SPARSE = { 1: 0.1312004499419488073250102996e-1,
                          6: -0.1225156446376204440720569753e+1,
                          7: -0.4957589496572501915214079952,
                          8: 0.1664377182454986536961530415e+1,
                          9: -0.3503288487499736816886487290,
                         10: 0.3341791187130174790297318841,
                         11: 0.8192320648511571246570742613e-1,
                         12: -0.2235530786388629525884427845e-1}

# Hairer's BHH1, BHH2, BHH3: the 3rd-order embedded solution.
b_hat3_SPARSE = { 1: 0.244094488188976377952755905512e+00,
                  9: 0.733846688281611857341361741547e+00,
                 12: 0.220588235294117647058823529412e-01}

# Hairer's D4j, D5j, D6j, D7j (j = 1..16): the coefficients F_3..F_6 of the dense output.
D_SPARSE = [
    { 1: -0.84289382761090128651353491142e+1,
      6: 0.56671495351937776962531783590,
      7: -0.30689499459498916912797304727e+1,
      8: 0.23846676565120698287728149680e+1,
      9: 0.21170345824450282767155149946e+1,
     10: -0.87139158377797299206789907490,
     11: 0.22404374302607882758541771650e+1,
     12: 0.63157877876946881815570249290,
     13: -0.88990336451333310820698117400e-1,
     14: 0.18148505520854727256656404962e+2,
     15: -0.91946323924783554000451984436e+1,
     16: -0.44360363875948939664310572000e+1},
    { 1: 0.10427508642579134603413151009e+2,
      6: 0.24228349177525818288430175319e+3,
      7: 0.16520045171727028198505394887e+3,
      8: -0.37454675472269020279518312152e+3,
      9: -0.22113666853125306036270938578e+2,
     10: 0.77334326684722638389603898808e+1,
     11: -0.30674084731089398182061213626e+2,
     12: -0.93321305264302278729567221706e+1,
     13: 0.15697238121770843886131091075e+2,
     14: -0.31139403219565177677282850411e+2,
     15: -0.93529243588444783865713862664e+1,
     16: 0.35816841486394083752465898540e+2},
    { 1: 0.19985053242002433820987653617e+2,
      6: -0.38703730874935176555105901742e+3,
      7: -0.18917813819516756882830838328e+3,
      8: 0.52780815920542364900561016686e+3,
      9: -0.11573902539959630126141871134e+2,
     10: 0.68812326946963000169666922661e+1,
     11: -0.10006050966910838403183860980e+1,
     12: 0.77771377980534432092869265740,
     13: -0.27782057523535084065932004339e+1,
     14: -0.60196695231264120758267380846e+2,
     15: 0.84320405506677161018159903784e+2,
     16: 0.11992291136182789328035130030e+2},
    { 1: -0.25693933462703749003312586129e+2,
      6: -0.15418974869023643374053993627e+3,
      7: -0.23152937917604549567536039109e+3,
      8: 0.35763911791061412378285349910e+3,
      9: 0.93405324183624310003907691704e+2,
     10: -0.37458323136451633156875139351e+2,
     11: 0.10409964950896230045147246184e+3,
     12: 0.29840293426660503123344363579e+2,
     13: -0.43533456590011143754432175058e+2,
     14: 0.96324553959188282948394950600e+2,
     15: -0.39177261675615439165231486172e+2,
     16: -0.14972683625798562581422125276e+3},
]


def _dense_vector(sparse, n):
    """A length-n list from Hairer's 1-based ``{j: value}`` (missing entries are 0)."""
    return [sparse.get(j + 1, 0.0) for j in range(n)]


b = _dense_vector(b_SPARSE, N_STAGES)
b_minus_b_hat5 = _dense_vector(b_minus_b_hat5_SPARSE, N_STAGES)
A_rows = [_dense_vector(A_SPARSE.get(i + 1, {}), i) for i in range(N_STAGES - 1)] + [b[:12]]
A_extra = [_dense_vector(A_SPARSE[i + 1], i) for i in range(N_STAGES, N_STAGES_DENSE)]
D = [_dense_vector(row, N_STAGES_DENSE) for row in D_SPARSE]

@dataclass(frozen=True)
class CombinedEstimateTableau(ButcherTableau):
    """A tableau whose error ratio combines the 5th- and 3rd-order estimates (dop853.f).

    Parameters
    ----------
    b_hat3 : sequence, shape (s,)
        The second embedded solution, of order 3 (checked by the order conditions like
        ``b`` and ``b_hat``); its float error weights are ``e3_float`` = b - b̂3.
    """

    b_hat3: tuple = None
    e3_float: tuple = field(init=False, repr=False, compare=False)
    e3_terms: tuple = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        if self.b_hat3 is None or self.b_hat is None:
            raise InputError(f"tableau {self.name!r}: a combined estimate needs b_hat and "
                             "b_hat3 (the two embedded solutions)")
        super().__post_init__()
        object.__setattr__(self, "e3_float", _error_weights(self.b, self.b_hat3))
        object.__setattr__(self, "e3_terms", sparse_terms(self.e3_float))

    def weights(self):
        """b, b_hat and b_hat3 with their orders (3 for b_hat3)."""
        return super().weights() + [("b_hat3", self.b_hat3, 3)]

    def error_power(self):
        """8: the combined estimate behaves like O(h^8) (Hairer: ``EXPO1 = 1/8``)."""
        return 8

    def error_ratio(self, norm, h, error, k, y0, y1):
        """E5² / sqrt(E5² + 0.01 E3²), each E the solve's ``norm`` of one estimate.

        A zero denominator (both estimates vanish) gives ratio 0. Works elementwise
        for per-sample ratios of shape (B,).
        """
        err5 = norm(error, y0, y1)
        err3 = norm(weighted_sum(h, self.e3_terms, k), y0, y1)
        xp = array_module(err5)
        denom = xp.sqrt(err5 * err5 + ERR3_WEIGHT * err3 * err3)
        ratio = xp.where(denom == 0.0, 0.0, err5 * err5 / xp.where(denom == 0.0, 1.0, denom))
        return ratio if getattr(err5, "ndim", 0) else float(ratio)


DOP853 = CombinedEstimateTableau(
    name="dop853",
    A=A_rows,
    b=b,
    c=c[:N_STAGES],
    order=8,
    b_hat=[b_i - e_i for b_i, e_i in zip(b, b_minus_b_hat5)],
    error_order=5,
    b_hat3=_dense_vector(b_hat3_SPARSE, N_STAGES),
    reference="Hairer's dop853.f (HNW I, §II.10); Prince & Dormand, "
              "J. Comput. Appl. Math. 7 (1981) 67-75",
    dense=hairer_dense_output(b, D, order=7, A_extra=A_extra, c_extra=c[N_STAGES:]),
)
