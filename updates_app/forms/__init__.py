"""The forms of the update screens, one module per screen.

- ``singleton``: what the singleton settings screens' forms share (revision,
  unknown fields, read-only, number ranges from the model's validators);
- ``automatic``: Automatic Update; ``rollouts``: its staged roll-out policy;
  ``schedule``: its load preview;
- ``proxy``: Administration > Proxy Settings;
- ``manual``: Manual Update's choice of clients;
- ``clients``: the client list's filter.
"""
