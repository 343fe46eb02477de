"""Reference solutions of the assignments whose functions are the course's own, not
refnode's: assignment 05's traces, CNF dynamics and log-density (refnode computes its
traces inside the fields' forward-mode passes; these are the textbook versions a student
writes) and the capstone's solver and training loop (the student's own wiring of
assignments 01 and 04). ``refnode course build`` generates the students' templates from
them; their grading tests check them against refnode itself (``CNFDynamics``,
``odeint``, ``refnode verify``). They are never copied into the handout.
"""
