"""The hostile-input corpus: what a hostile workflow author or input tries, by category.

Shared by the tests in this package (each outcome asserted) and ``benchmarks/stress.py``
(tried/refused/time/peak RSS per category).
"""

from __future__ import annotations

HANG = "{% set r = range(99999) %}{% for i in r %}{% for j in r %}{% endfor %}{% endfor %}"

ESCAPES: list[str] = [
    "''.__class__.__mro__",
    "().__class__.__base__.__subclasses__()",
    "input.__class__",
    "input|attr('__class__')",
    "self._TemplateReference__context",
    "self.__init__.__globals__",
    "range.__globals__",
    "range.__code__",
    "dict.__subclasses__()",
    "dict.mro()[1].__subclasses__()",
    "'{0.__class__}'.format(1)",
    "''.format.__globals__",
    "lipsum.__globals__",
    "cycler.__init__.__globals__",
    "joiner.__init__.__globals__",
    "namespace.__init__.__globals__",
    "config",
    "request",
    "{% import 'os' as os %}",
    "{% include '/etc/passwd' %}",
    "{% extends '/etc/passwd' %}",
    "'x'|format('a')",
    "'x'|indent(1)",
    "[1]|pprint",
    "input|tojson",
    "{% set x = input %}{% set x.a = 1 %}",
    "''.join.__self__.__class__",
    "[].__setitem__",
    "(1).__class__.__subclasses__()",
]
"""Attribute escapes, imports and I/O, unlisted filters and globals: all refused."""

HANGS: list[str] = [
    HANG,
    "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
    "{% for i in range(99999) %}{% for j in range(99999) %}{{ '' }}{% endfor %}{% endfor %}",
    "range(99999)|map('string')|map('upper')|map('lower')|map('trim')|list|length * 0"
    " + (range(99999)|list|sort|unique|list|length) * 0"
    " + ([range(99999)|list]*20)|map('sort')|map('length')|sum",
    "{% macro f(n) %}{{ f(n) }}{% endmacro %}{{ f(1) }}",
    "{% for x in range(100000) recursive %}{{ loop(range(100000)) }}{% endfor %}",
    "'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa!' | regex_search('(a+)+$')",
    "('a' * 100000 ~ '!') | regex_search('(a|aa)+$')",
    "('x' * 999999) | regex_replace('(x+x+)+y', 'z')",
]
"""Work without end: nested loops, recursion, catastrophic regular expressions."""

BIG_VALUES: list[str] = [
    "(['a'*999999]*999)|string",
    "(['a'*999999]*999)|to_json",
    "('a'*999999) ~ ('a'*999999)",
    "{% set s = 'a'*999999 %}{% for i in range(1000) %}{{ s }}{% endfor %}",
    "{% set s %}{% for i in range(1000) %}{{ 'a'*999999 }}{% endfor %}{% endset %}{{ s|length }}",
    "'%s' % (['a'*999999]*999,)",
    "'%*s' % (999999999, 'a')",
    "'{:>999999999}'.format(1)",
    "'{:{}}'.format(1, 999999999)",
    "'{x:{w}}'.format_map({'x': 1, 'w': 999999999})",
    "('a'*999999)|regex_replace('a', '\\\\g<0>\\\\g<0>')",
    "('a'*999999)|regex_replace('a', '\\\\g<0>' * 1000)",
    "[1]|batch(10**8, 0)|list",
    "[1]|slice(10**8)|list",
    "([[1]*1000]*1001)|sum(start=[])",
    "'a'*10**8",
    "('a'*999999).ljust(10**9)",
    "('ab'*499999).replace('a', 'a'*1000)",
    "('ab'*499999).translate({97: 'a'*1000})",
    "'-'.join(['a'*999999]*999)",
    "(['a'*999999]*999)|join('-')",
    "(['a'*999999]*999)|upper",
    "([0]*999999)*999",
    "2**(10**8)",
    "10**(10**10)",
    "(range(99999)|list) + (range(99999)|list)*10",
]
"""Ways of building huge values from small expressions: refused before the allocation."""

MUTATIONS: list[str] = [
    "dict.update(raw, {'n': 'not an integer'})",
    "dict.clear(raw)",
    "dict.setdefault(inputs, 'limit', 999)",
    "dict.pop(raw, 'n')",
    "dict.popitem(raw)",
    "dict.update(inputs, {'limit': 0})",
    "raw|attr('update')",
    "(dict|attr('update'))(raw, {'n': 'x'})",
    "raw.update({'n': 'x'})",
    "raw.blob.append(1)",
    "raw.blob.extend([1, 2])",
    "raw.blob.clear()",
]
"""Attempts to write state, inputs or results from inside an expression."""

NOT_JSON: dict[str, str] = {
    "self": "TemplateReference",
    "dict.fromkeys": "builtin_function_or_method",
    "[1, 2]|map('string')": "generator",
    "[1, 1]|unique": "generator",
    "[dict.fromkeys]": "builtin_function_or_method",
    "{'a': self}": "TemplateReference",
    "range": "function",
}
"""Results that are not JSON data, with the type their error names."""

COSTLY = [
    "((('v'*1000000)|int(base=32)) // (('v'*500000)|int(base=32))) % 2",
    "('a'*999999 ~ 'b') in (['a'*1000000]*400000)",
    "(['a'*1000000]*400000) == (['a'*1000000]*399999 + ['a'*999999 ~ 'b'])",
    "(['a'*1000000]*400000).count('a'*999999 ~ 'b')",
    "(['a'*1000000]*100000)|unique|list",
    "(['a'*1000000]*100000)|max",
    "(['a'*1000000]*100000)|select('equalto', 'a'*999999 ~ 'b')|list",
    "(['a'*1000000]*100000)|reject('in', ['a'*999999 ~ 'b'])|list|length",
    "(['a'*1000000]*100000)|sort(case_sensitive=true)|length",
]
COSTLY += [
    "1|round(-50000000)",
    "1.5|round(10000000, 'ceil')",
    "('a'*999999 ~ 'b') in dict.fromkeys(range(99999), 'a'*1000000).values()",
    "dict.fromkeys(range(99999), 'a'*1000000).values()|string|length",
]
"""One C-level operation on huge operands (a comparison, a search, a sort, a parse): each is
charged by the size of its operands and refused before it runs."""

CLOCKED: list[str] = [
    "dict.fromkeys(range(0, (2**61-1)*40000, 2**61-1))|length",
    "dict(dict.fromkeys(range(0, (2**61-1)*40000, 2**61-1)))|length",
    "dict.fromkeys(range(9999), (0,)*99999).values()|unique|list|length",
]
"""Work that is slow for its inputs' shape, not their size (keys whose hashes collide): done
one charged step at a time, so the CPU-time bound stops it."""

BROKEN_RESULTS: list[str] = [
    "('9'*4300)|from_json + 1",
    "[" * 80 + "1" + "]" * 80,
    "('['*300 ~ ']'*300)|from_json",
    "['a'*1000000]*1000000",
]
"""Results no output could show (a 14,000-bit integer, 300 levels deep, 10^12 characters) or
expressions too deep to compile: each is an ExpressionError."""

BIG_ALLOCATIONS = [
    "'{0:{1}}'.format('x','2000000000')|length",
    "'{x:{w}}'.format_map({'x': 'x', 'w': '2000000000'})|length",
    "'{0:.{1}f}'.format(1.5, '2000000000')|length",
    "'{0:\u20ac>{1}}'.format('x', '2000000')|length",
    "'{!s}'.format(['a'*999999]*999)|length",
    "(['a'*1000000]*2500)|sort|length",
    "(['a'*100000]*2500)|unique|list|length",
    "(['a'*1000000]*2500)|groupby('x')|list|length",
    "([range(100000)]*1000)|map('list')|list|length",
    "([range(99999)|list]*1000)|map('reverse')|map('list')|list|length",
]
BIG_ALLOCATIONS += [
    "''.encode().center(300000000)|length",
    "(('%999999s'*300) % ((1,)*300))|length",
    "('%.*f'*300) % ((999999, 1.0)*300)",
    "'%s' % (dict.fromkeys(range(200), 'a'*1000000).values(),)",
    "('\t'*1000).expandtabs(tabsize=300000)|length",
    "('a'*1000).translate(['x'*1000000]*98)|length",
]
"""Allocations a small expression asks for (widths given as text, case-folded sort keys,
materialised ranges): refused before they are made."""
