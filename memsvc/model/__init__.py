"""The ground floor: the data model, errors, ids, filters, input validation and settings.

Everything else in memsvc imports from here; nothing here imports anything else of memsvc.
"""
