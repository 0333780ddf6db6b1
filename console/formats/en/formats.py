"""The console's one date-time form, also for what Django renders itself (the admin, a bare ``{{ value }}``).

Same as ``console.wording.moment``: 2026-11-26 14:05:09 CET, 24-hour clock, server time zone named.
"""

DATETIME_FORMAT = "Y-m-d H:i:s T"
SHORT_DATETIME_FORMAT = "Y-m-d H:i T"
DATE_FORMAT = "Y-m-d"
SHORT_DATE_FORMAT = "Y-m-d"
TIME_FORMAT = "H:i:s"
