"""`make soak`: the service under Stream faults and kill -9, checked for convergence (see docs/development.md, "Soak")."""
