"""Reference solutions of the assignments whose functions are the course's own, not
refnode's (refnode's adjoint and CNF are written for batches, devices and step control;
these are the textbook versions a student writes). ``refnode course build`` generates
the students' templates from them; their grading tests check them against refnode
itself (``odeint_vjp``, the exact trace). They are never copied into the handout.
"""
