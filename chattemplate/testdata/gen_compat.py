#!/usr/bin/env python3
"""Regenerates compat.json: small Jinja probes rendered by Python Jinja2 set up
like Hugging Face transformers' apply_chat_template (ImmutableSandboxedEnvironment,
trim_blocks, lstrip_blocks, loopcontrols, a {% generation %} block, tojson with
ensure_ascii=False, raise_exception, strftime_now).

Usage: python3 gen_compat.py > compat.json   (needs jinja2 >= 3.1)
The Go test (compat_test.go) renders every case with chattemplate and compares.
"""
import json
import sys
from datetime import datetime

import jinja2
from jinja2 import nodes
from jinja2.ext import Extension, loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment


class Generation(Extension):
    tags = {"generation"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(["name:endgeneration"], drop_needle=True)
        return nodes.CallBlock(self.call_method("_render", []), [], [], body).set_lineno(lineno)

    def _render(self, caller):
        return caller()


def raise_exception(message):
    raise jinja2.exceptions.TemplateError(message)


def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


FIXED_NOW = datetime(2024, 7, 5, 9, 3, 7)


def strftime_now(fmt):
    return FIXED_NOW.strftime(fmt)


env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[Generation, loopcontrols])
env.filters["tojson"] = tojson
env.globals["raise_exception"] = raise_exception
env.globals["strftime_now"] = strftime_now

MSGS = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Hi"},
    {"role": "assistant", "content": "Hello!"},
    {"role": "user", "content": "Bye"},
]
TOOLS = [
    {"type": "function", "function": {"name": "get_weather", "description": "Get the weather",
     "parameters": {"type": "object", "properties": {"location": {"type": "string", "description": "City, e.g. Paris"},
                                                      "unit": {"type": "string", "enum": ["c", "f"]}},
                    "required": ["location"]}}},
]
TC_MSG = {"role": "assistant", "content": None, "tool_calls": [
    {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": {"location": "Zürich", "unit": "c", "n": 3, "x": 1.5}}}]}

CASES = [
    # printing of scalars
    ("print_scalars", "{{ 1 }}|{{ 1.5 }}|{{ 2.0 }}|{{ true }}|{{ false }}|{{ 'a' }}|{{ -3 }}", {}),
    ("print_none_literal", "[{{ none }}]", {}),
    ("arith", "{{ 7 // 2 }} {{ 7 % 3 }} {{ 2 ** 10 }} {{ 10 / 4 }} {{ 3 * 4 }} {{ 1 + 2 }} {{ 5 - 7 }} {{ 1.5 + 1 }}", {}),
    ("str_mul", "{{ 'ab' * 3 }}", {}),
    ("concat_tilde", "{{ 'a' ~ 1 ~ true }}", {}),
    ("concat_plus", "{{ 'a' + 'b' + x }}", {"x": "c"}),
    ("list_concat", "{{ (a + b)|join(',') }}", {"a": [1, 2], "b": [3]}),
    ("undefined_print", "[{{ nope }}]", {}),
    ("undefined_attr_test", "{{ nope is defined }} {{ nope is undefined }} {{ x is defined }}", {"x": 1}),
    ("missing_key_defined", "{{ m.nope is defined }} {{ m.role is defined }} {{ m['nope'] is defined }}", {"m": MSGS[0]}),
    ("if_undefined", "{% if nope %}y{% else %}n{% endif %}", {}),
    ("none_tests", "{{ x is none }} {{ y is none }} {{ x is not none }}", {"x": None, "y": 0}),
    # dict/attr access
    ("attr_item", "{{ m.role }}:{{ m['content'] }}:{{ messages[0]['role'] }}:{{ messages[-1].content }}", {"m": MSGS[1], "messages": MSGS}),
    ("dict_get", "{{ m.get('role') }} {{ m.get('nope', 'dflt') }} [{{ m.get('nope') }}]", {"m": MSGS[1]}),
    ("dict_items_order", "{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}", {"d": {"z": 1, "a": 2, "m": 3}}),
    ("dict_iter_order", "{% for k in d %}{{ k }},{% endfor %}", {"d": {"z": 1, "a": 2, "m": 3}}),
    ("dict_keys_values", "{{ d.keys()|list|join(',') }} {{ d.values()|list|join(',') }}", {"d": {"z": 1, "a": 2}}),
    ("items_filter", "{% for k, v in d|items %}{{ k }}={{ v }};{% endfor %}", {"d": {"z": 1, "a": 2}}),
    ("dictsort", "{% for k, v in d|dictsort %}{{ k }}={{ v }};{% endfor %}", {"d": {"b": 1, "A": 2, "c": 3}}),
    ("in_ops", "{{ 'a' in 'cat' }} {{ 2 in [1,2] }} {{ 'role' in m }} {{ 'x' not in m }}", {"m": MSGS[0]}),
    ("dict_literal", "{% set d = {'b': 1, 'a': [1, 2]} %}{{ d.b }}{{ d['a'][1] }}{{ d|length }}", {}),
    # slicing
    ("slice_list", "{{ l[1:]|join(',') }}|{{ l[::-1]|join(',') }}|{{ l[:-1]|join(',') }}|{{ l[1:3]|join(',') }}|{{ l[::2]|join(',') }}", {"l": [1, 2, 3, 4, 5]}),
    ("slice_str", "{{ s[1:] }}|{{ s[::-1] }}|{{ s[:2] }}|{{ s[-2:] }}|{{ s[0] }}|{{ s[-1] }}", {"s": "héllo"}),
    ("slice_messages", "{% for m in messages[1:] %}{{ m.role }},{% endfor %}", {"messages": MSGS}),
    ("reverse_messages", "{% for m in messages[::-1] %}{{ loop.index0 }}{{ m.role[0] }},{% endfor %}", {"messages": MSGS}),
    # loops
    ("loop_vars", "{% for x in l %}{{ loop.index }}{{ loop.index0 }}{{ loop.first }}{{ loop.last }}{{ loop.length }}{{ loop.revindex }}{{ loop.revindex0 }};{% endfor %}", {"l": ["a", "b", "c"]}),
    ("loop_prev_next", "{% for x in l %}{{ loop.previtem }}-{{ loop.nextitem }};{% endfor %}", {"l": [1, 2, 3]}),
    ("loop_cycle", "{% for x in l %}{{ loop.cycle('o', 'e') }}{% endfor %}", {"l": [1, 2, 3]}),
    ("loop_break_continue", "{% for x in l %}{% if x == 2 %}{% continue %}{% endif %}{% if x == 4 %}{% break %}{% endif %}{{ x }}{% endfor %}", {"l": [1, 2, 3, 4, 5]}),
    ("loop_else", "{% for x in l %}{{ x }}{% else %}empty{% endfor %}", {"l": []}),
    ("loop_filter", "{% for x in l if x > 1 %}{{ x }}{{ loop.index }}{% endfor %}", {"l": [1, 2, 3]}),
    ("loop_unpack", "{% for a, b in l %}{{ a }}{{ b }};{% endfor %}", {"l": [[1, 2], [3, 4]]}),
    ("loop_range", "{% for i in range(3) %}{{ i }}{% endfor %}|{% for i in range(1, 7, 2) %}{{ i }}{% endfor %}|{% for i in range(3, 0, -1) %}{{ i }}{% endfor %}", {}),
    ("loop_str", "{% for c in s %}[{{ c }}]{% endfor %}", {"s": "aé"}),
    ("loop_scope", "{% set y = 1 %}{% for x in l %}{% set y = x %}{% endfor %}{{ y }}", {"l": [5, 6]}),
    ("if_scope", "{% if true %}{% set y = 2 %}{% endif %}{{ y }}", {}),
    ("nested_loop", "{% for a in l %}{% for b in l %}{{ loop.index }}{{ a }}{{ b }} {% endfor %}{% endfor %}", {"l": [1, 2]}),
    ("recursive_loop", "{% for n in tree recursive %}{{ n.name }}{% if n.children %}({{ loop(n.children) }}){% endif %}{% endfor %}", {"tree": [{"name": "a", "children": [{"name": "b", "children": []}]}, {"name": "c", "children": []}]}),
    # namespace
    ("namespace", "{% set ns = namespace(a=1, found=false) %}{% for x in l %}{% set ns.a = ns.a + x %}{% if x == 2 %}{% set ns.found = true %}{% endif %}{% endfor %}{{ ns.a }} {{ ns.found }}", {"l": [1, 2, 3]}),
    ("namespace_set_cond", "{% set ns = namespace(v='') %}{% set ns.v = 'yes' if flag else 'no' %}{{ ns.v }}", {"flag": True}),
    # tests
    ("tests_types", "{{ 'a' is string }} {{ 1 is string }} {{ 1 is number }} {{ 1.5 is number }} {{ 1 is integer }} {{ 1.5 is float }} {{ true is boolean }} {{ d is mapping }} {{ l is mapping }} {{ l is sequence }} {{ 'ab' is sequence }} {{ d is iterable }} {{ 1 is iterable }}", {"d": {"a": 1}, "l": [1]}),
    ("tests_bool", "{{ true is true }} {{ false is false }} {{ 1 is true }} {{ x is false }} {{ none is false }}", {"x": False}),
    ("tests_cmp", "{{ 2 is even }} {{ 3 is odd }} {{ 9 is divisibleby 3 }} {{ 2 is eq 2 }} {{ 2 is ne 3 }} {{ 1 is lt 2 }} {{ 'a' is in 'abc' }} {{ 'ab' is lower }} {{ 'AB' is upper }}", {}),
    ("tests_callable", "{{ raise_exception is callable }} {{ 'x' is callable }}", {}),
    # string methods
    ("str_strip", "[{{ s.strip() }}][{{ s.lstrip() }}][{{ s.rstrip() }}][{{ t.strip('x') }}][{{ t.lstrip('x') }}][{{ t.rstrip('x') }}]", {"s": " \n a b \t", "t": "xxaxx"}),
    ("str_lstrip_nl", "[{{ s.lstrip('\\n') }}][{{ s.rstrip('\\n') }}][{{ s.strip('\\n') }}]", {"s": "\n\n hi \n\n"}),
    ("str_split", "{{ s.split('</think>')|join('|') }}#{{ s.split('</think>')[-1] }}#{{ s.split('</think>')[0] }}", {"s": "<think>r</think>ans</think>end"}),
    ("str_split_ws", "{{ s.split()|join('|') }}#{{ s.split(' ')|join('|') }}#{{ s.split(',', 1)|join('|') }}#{{ s.rsplit(' ', 1)|join('|') }}", {"s": " a  b,c d "}),
    ("str_starts_ends", "{{ s.startswith('<tool') }} {{ s.endswith('>') }} {{ s.startswith(('x', '<')) }} {{ s.endswith('x') }}", {"s": "<tool_response>"}),
    ("str_case", "{{ s.upper() }} {{ s.lower() }} {{ s.title() }} {{ s.capitalize() }} {{ s.swapcase() }}", {"s": "hello wORLD"}),
    ("str_misc", "{{ s.replace('l', 'L') }} {{ s.find('l') }} {{ s.count('l') }} {{ '-'.join(['a','b']) }} {{ s.isdigit() }} {{ '42'.isdigit() }}", {"s": "hello"}),
    ("str_format_method", "{{ '{} and {}'.format('a', 'b') }} {{ '{x}!'.format(x=1) }}", {}),
    ("str_splitlines", "{{ s.splitlines()|join('|') }}", {"s": "a\nb\r\nc"}),
    ("str_unicode_len", "{{ s|length }} {{ s|upper }} {{ s[1] }}", {"s": "héllo wörld"}),
    # filters
    ("f_length", "{{ l|length }} {{ s|length }} {{ d|length }} {{ l|count }}", {"l": [1, 2], "s": "abc", "d": {"a": 1}}),
    ("f_trim", "[{{ s|trim }}][{{ t|trim('x') }}]", {"s": "  hi \n", "t": "xhix"}),
    ("f_join_map", "{{ messages|map(attribute='role')|join(', ') }}", {"messages": MSGS}),
    ("f_selectattr", "{{ messages|selectattr('role', 'equalto', 'user')|list|length }} {{ messages|rejectattr('role', 'equalto', 'user')|map(attribute='role')|join(',') }}", {"messages": MSGS}),
    ("f_select", "{{ l|select('odd')|join(',') }} {{ l|reject('odd')|join(',') }} {{ l|select|list|length }}", {"l": [0, 1, 2, 3]}),
    ("f_reject_equalto", "{{ l|reject('equalto', 'b')|join(', ') }}", {"l": ["a", "b", "c"]}),
    ("f_first_last", "{{ l|first }} {{ l|last }} {{ s|first }} {{ s|last }}", {"l": [1, 2, 3], "s": "xyz"}),
    ("f_default", "{{ nope|default('d') }} {{ x|default('d') }} {{ e|default('d', true) }} {{ nope|d('z') }}", {"x": "v", "e": ""}),
    ("f_default_none", "[{{ x|default('d') }}]", {"x": None}),
    ("f_int_float", "{{ '42'|int + 1 }} {{ '3.5'|float }} {{ 3.7|int }} {{ 'x'|int }} {{ 2|float }}", {}),
    ("f_string", "{{ 12|string + 'a' }} {{ l|string }} {{ d|string }}", {"l": [1, "a"], "d": {"k": "v"}}),
    ("f_string_quotes", "{{ l|string }}", {"l": ["it's", 'say "hi"', "a\nb"]}),
    ("f_case", "{{ s|upper }} {{ s|lower }} {{ s|title }} {{ s|capitalize }}", {"s": "hello wORLD"}),
    ("f_replace", "{{ s|replace('a', 'o') }} {{ s|replace('a', 'o', 1) }}", {"s": "banana"}),
    ("f_reverse_sort", "{{ l|reverse|join(',') }} {{ l|sort|join(',') }} {{ l|sort(reverse=true)|join(',') }} {{ s|reverse }}", {"l": [3, 1, 2], "s": "abc"}),
    ("f_sort_attr", "{{ l|sort(attribute='n')|map(attribute='n')|join(',') }}", {"l": [{"n": 2}, {"n": 1}]}),
    ("f_unique_minmax_sum", "{{ l|unique|join(',') }} {{ l|min }} {{ l|max }} {{ l|sum }}", {"l": [3, 1, 3, 2]}),
    ("f_list", "{{ 'ab'|list|join('-') }} {{ l|list|length }}", {"l": [1, 2]}),
    ("f_abs_round", "{{ -3|abs }} {{ 2.567|round(1) }} {{ 2.5|round }} {{ 2.567|round(2, 'floor') }}", {}),
    ("f_indent", "{{ s|indent(2) }}|{{ s|indent(2, true) }}", {"s": "a\nb\nc"}),
    ("f_wordcount_truncate", "{{ s|wordcount }} {{ s|truncate(9) }}", {"s": "one two three four"}),
    ("f_batch", "{% for b in l|batch(2) %}{{ b|join('') }};{% endfor %}", {"l": [1, 2, 3]}),
    ("f_format", "{{ '%s-%d'|format('a', 3) }} {{ '%.2f'|format(1.5) }} {{ '%5s|'|format('ab') }}", {}),
    ("f_escape_safe", "{{ s|e }} {{ s|safe }} {{ s }}", {"s": "<a href='x'>&</a>"}),
    ("f_center", "[{{ 'ab'|center(6) }}]", {}),
    ("f_groupby", "{% for g in l|groupby('k') %}{{ g.grouper }}:{{ g.list|map(attribute='v')|join(',') }};{% endfor %}", {"l": [{"k": "b", "v": 1}, {"k": "a", "v": 2}, {"k": "b", "v": 3}]}),
    ("f_attr", "{{ m|attr('role') }}", {"m": MSGS[0]}),
    # tojson
    ("tojson_basic", "{{ d|tojson }}", {"d": {"z": "é\"\\\n\t<>&'", "a": [1, 2.5, True, None, 1.0], "n": {}}}),
    ("tojson_indent", "{{ d|tojson(indent=2) }}", {"d": {"b": [1, {"c": "x"}], "a": {}, "e": []}}),
    ("tojson_indent4_tools", "{{ tools|tojson(indent=4) }}", {"tools": TOOLS}),
    ("tojson_sort_keys", "{{ d|tojson(sort_keys=true) }}", {"d": {"b": 1, "a": 2}}),
    ("tojson_separators", "{{ d|tojson(separators=(',', ':')) }}", {"d": {"b": [1, 2], "a": "x"}}),
    ("tojson_ascii", "{{ s|tojson(ensure_ascii=true) }}", {"s": "é😀\u0001"}),
    ("tojson_str_num", "{{ 'x'|tojson }} {{ 3|tojson }} {{ 1.5|tojson }} {{ none|tojson }} {{ true|tojson }} {{ 1e20|tojson }} {{ 0.00001|tojson }}", {}),
    ("tojson_tool_call", "{% for tc in m.tool_calls %}{{ tc.function.arguments|tojson }}{% endfor %}", {"m": TC_MSG}),
    ("tojson_control", "{{ s|tojson }}", {"s": "a\u0000b\u001fc\u007fd\u2028e"}),
    ("tojson_literal", "{{ {'b': [1, 'x'], 'a': none}|tojson }}", {}),
    ("tojson_float_fmt", "{{ l|tojson }}", {"l": [0.1, 1e16, 1e15, 123456789.123, -0.0, 1e-7, 2.5e-5]}),
    ("print_float_fmt", "{% for x in l %}{{ x }} {% endfor %}", {"l": [0.1, 1e16, 1e15, 123456789.123, 1e-7, 2.5e-5, 100.0]}),
    # whitespace control
    ("ws_trim_blocks", "{% if true %}\nA\n{% endif %}\nB\n", {}),
    ("ws_lstrip_blocks", "  {% if true %}\n    X\n  {% endif %}\nY", {}),
    ("ws_lstrip_plus", "  {%+ if true %}x{% endif %}", {}),
    ("ws_minus", "a  {%- if true -%}  b  {%- endif -%}  c", {}),
    ("ws_output_minus", "a  {{- 'b' -}}  c\n{{ 'd' }}\n", {}),
    ("ws_comment", "a\n  {# comment #}\nb {#- c -#} c", {}),
    ("ws_trailing_newline", "x\n", {}),
    ("ws_trailing_newlines", "x\n\n", {}),
    ("ws_crlf", "{% if true %}\r\nA\r\n{% endif %}\r\nB", {}),
    ("ws_for_indent", "{% for x in l %}\n    {% if x %}\n  - {{ x }}\n    {% endif %}\n{% endfor %}\n", {"l": [1, 0, 2]}),
    ("ws_set_block", "{% set x %}\n  hi {{ 1 }}\n{% endset %}[{{ x }}]", {}),
    ("ws_output_keeps_nl", "{{ 'a' }}\n{{ 'b' }}\n", {}),
    ("ws_minus_after_nl", "a\n\n{%- if true %}\nb{% endif %}", {}),
    # literals
    ("str_escapes", "{{ 'a\\nb' }}|{{ \"q\\\"q\" }}|{{ 'it\\'s' }}|{{ 'tab\\there' }}|{{ 'back\\\\slash' }}", {}),
    ("str_unicode_escape", "{{ '\\u00e9' }}", {}),
    ("list_print", "{{ [1, 'a', none, true] }}", {}),
    ("dict_print", "{{ {'a': 1, 'b': 'x'} }}", {}),
    ("ternary", "{{ 'y' if x else 'n' }} [{{ 'y' if not x }}] {{ x and 'A' or 'B' }}", {"x": True}),
    ("bool_ops", "{{ '' or 'x' }} {{ 0 and 1 }} {{ not '' }} {{ 1 < 2 < 3 }} {{ 3 > 2 > 4 }}", {}),
    ("compare_str", "{{ 'a' < 'b' }} {{ 'a' == 'a' }} {{ 1 == 1.0 }} {{ 'a' != 'b' }}", {}),
    ("tuple_literal", "{% for x in (1, 2) %}{{ x }}{% endfor %}{{ (1, 2)|length }}", {}),
    ("filter_chain_precedence", "{{ -1|abs }} {{ 'a' ~ 'b'|upper }} {{ l|length > 1 }}", {"l": [1, 2]}),
    ("not_precedence", "{{ not x is none }} {{ not x in l }}", {"x": 1, "l": [1]}),
    # macros & blocks
    ("macro", "{% macro greet(name, p='Hi') %}{{ p }} {{ name }}{% endmacro %}{{ greet('Bob') }}|{{ greet('Al', p='Yo') }}", {}),
    ("macro_recursive", "{% macro f(n) %}{{ n }}{% if n > 0 %}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(3) }}", {}),
    ("macro_caller", "{% macro wrap() %}[{{ caller() }}]{% endmacro %}{% call wrap() %}in{% endcall %}", {}),
    ("macro_json_type", "{% macro t(j) %}{% if j.type == 'string' %}str{% elif j.type == 'array' %}list[{{ t(j['items']) }}]{% elif j.type == 'object' %}dict{% endif %}{% endmacro %}{{ t(s) }}", {"s": {"type": "array", "items": {"type": "string"}}}),
    ("filter_block", "{% filter upper %}abc{% endfilter %}", {}),
    ("with_block", "{% with a = 1, b = 2 %}{{ a + b }}{% endwith %}", {}),
    ("raw_block", "{% raw %}{{ x }}{% endraw %}", {}),
    ("generation_block", "{% for m in messages %}{% if m.role == 'assistant' %}{% generation %}{{ m.content }}{% endgeneration %}{% else %}{{ m.content }}{% endif %}|{% endfor %}", {"messages": MSGS}),
    ("set_block_trim", "{%- set x -%}  v  {%- endset -%}[{{ x }}]", {}),
    # globals
    ("raise", "{% if x %}{{ raise_exception('Conversation roles must alternate!') }}{% endif %}ok", {"x": True}),
    ("raise_not_called", "{% if x %}{{ raise_exception('bad') }}{% endif %}ok", {"x": False}),
    ("strftime", "{{ strftime_now('%d %b %Y') }}|{{ strftime_now('%Y-%m-%d %H:%M:%S') }}|{{ strftime_now('%A %B %j %y %I%p %%') }}", {}),
    ("range_print_len", "{{ range(5)|list|length }} {{ range(2, 5)|join(',') }}", {}),
    ("dict_global", "{{ dict(a=1)['a'] }}", {}),
    ("cycler_joiner", "{% set c = cycler('a', 'b') %}{{ c.next() }}{{ c.next() }}{{ c.next() }}", {}),
    # errors
    ("err_unknown_filter", "{{ x|nosuchfilter }}", {"x": 1}),
    ("err_str_plus_none", "{{ 'a' + x }}", {"x": None}),
    ("err_undefined_attr_of_undefined", "{{ nope.x }}", {}),
    ("err_append", "{% set l = [1] %}{{ l.append(2) }}", {}),
    ("err_div_zero", "{{ 1 / 0 }}", {}),
    # real-template idioms
    ("alternate_roles", "{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{{ message['role'] }};{% endfor %}", {"messages": MSGS[1:]}),
    ("alternate_roles_bad", "{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{{ message['role'] }};{% endfor %}", {"messages": MSGS}),
    ("system_split", "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}{% set sys = messages[0]['content'] %}{% else %}{% set loop_messages = messages %}{% set sys = false %}{% endif %}{% for m in loop_messages %}{% if loop.index0 == 0 and sys != false %}{{ '<<SYS>>\\n' + sys + '\\n<</SYS>>\\n\\n' + m['content'] }}{% else %}{{ m['content'] }}{% endif %}|{% endfor %}", {"messages": MSGS}),
    ("tool_calls_none_content", "{% for m in messages %}{% if m.content is not none %}{{ m.content }}{% endif %}{% if m.tool_calls is defined and m.tool_calls %}{% for tc in m.tool_calls %}{{ tc.function.name }}({% for k, v in tc.function.arguments|items %}{{ k }}={{ v }},{% endfor %}){% endfor %}{% endif %}{% endfor %}", {"messages": [TC_MSG]}),
    ("content_is_string", "{% for m in messages %}{% if m.content is string %}S{% else %}{% for p in m.content %}{{ p.type }}:{{ p.text }};{% endfor %}{% endif %}{% endfor %}", {"messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}, {"type": "image"}]}, {"role": "user", "content": "x"}]}),
    ("deepseek_ns", "{% set ns = namespace(is_first=false, system_prompt='') %}{%- for message in messages %}{%- if message['role'] == 'system' %}{% set ns.system_prompt = message['content'] %}{%- endif %}{%- endfor %}{{ bos_token }}{{ ns.system_prompt }}{% for message in messages %}{% if message['role'] == 'assistant' and '</think>' in message['content'] %}{% set content = message['content'].split('</think>')[-1] %}{{ content }}{% endif %}{% endfor %}", {"bos_token": "<s>", "messages": [{"role": "system", "content": "S"}, {"role": "assistant", "content": "<think>x</think>ans"}]}),
    ("tools_none", "{% if tools is not none %}T{% endif %}{% if tools %}t{% endif %}{% if tools is defined %}D{% endif %}.", {"tools": None}),
    ("llama31_tools", "{%- if tools is not none %}{%- for t in tools %}{{- t | tojson(indent=4) }}{{- \"\\n\\n\" }}{%- endfor %}{%- endif %}", {"tools": TOOLS}),
    ("mistral_tool_id", "{% for tc in m.tool_calls %}{% if not (tc.id is string and tc.id|length == 9) %}{{ raise_exception('Tool call IDs should be alphanumeric strings with length 9!') }}{% endif %}{% endfor %}", {"m": TC_MSG}),
    ("gemma_role_map", "{% for message in messages %}{% if message['role'] == 'assistant' %}{% set role = 'model' %}{% else %}{% set role = message['role'] %}{% endif %}{{ '<start_of_turn>' + role + '\\n' + message['content'] | trim + '<end_of_turn>\\n' }}{% endfor %}", {"messages": [{"role": "user", "content": " hi "}, {"role": "assistant", "content": "yo\n"}]}),
    # conditional expressions anywhere (gonja only parses them at the top of {{ }})
    ("cond_top", "{{ 'y' if x else 'n' }}|{{ 'y' if not x else 'n' }}", {"x": 0}),
    ("cond_nested_parens", "{{ 'a' + ('b' if x else 'c') + 'd' }}", {"x": True}),
    ("cond_chain", "{{ 'one' if n == 1 else 'two' if n == 2 else 'many' }}", {"n": 2}),
    ("cond_in_args", "{{ l|join(', ' if sep else '-') }} {{ 'x'.center(5 if w else 1) }}", {"l": [1, 2], "sep": True, "w": True}),
    ("cond_in_list_dict", "{{ ['a' if x else 'b', 'c']|join }} {{ {'k': 1 if x else 2}.k }}", {"x": False}),
    ("cond_no_else", "[{{ ('a' if x) ~ 'b' }}]", {"x": False}),
    ("cond_lazy", "{{ raise_exception('boom') if x else 'safe' }}", {"x": False}),
    ("cond_in_set", "{% set v = 'p' + ('q' if x else 'r') %}{{ v }}", {"x": True}),
    ("cond_in_for_iter", "{% for i in (a if x else b) %}{{ i }}{% endfor %}", {"x": False, "a": [1], "b": [2, 3]}),
    ("cond_in_for_with_filter", "{% for i in (a if x else b) if i > 2 %}{{ i }}{% endfor %}", {"x": False, "a": [1], "b": [2, 3]}),
    ("cond_in_if", "{% if ('a' if x else '') %}T{% else %}F{% endif %}", {"x": True}),
    ("cond_macro_default", "{% macro m(v='a' if flag else 'b') %}{{ v }}{% endmacro %}{{ m() }}", {"flag": True}),
    ("cond_or_precedence", "{{ a or b if c else 'z' }}", {"a": "", "b": "B", "c": True}),
    ("cond_filter_precedence", "{{ s|upper if c else s }}", {"s": "ab", "c": True}),
    # set forms
    ("set_unpack", "{% set a, b = [1, 2] %}{{ a }}{{ b }}", {}),
    ("set_tuple", "{% set t = 1, 2 %}{{ t|length }}", {}),
    ("set_ns_block", "{% set ns = namespace(x='') %}{% set ns.x %}in{{ 1 }}{% endset %}[{{ ns.x }}]", {}),
    ("ns_print", "{% set ns = namespace(a=1, b='x') %}{{ ns.a }}{{ ns['b'] }}{{ ns.missing is defined }}", {}),
    ("ns_nonns_error", "{% set d = {'a': 1} %}{% set d.a = 2 %}{{ d.a }}", {}),
    # operators
    ("int_ops_neg", "{{ -7 // 2 }} {{ -7 % 3 }} {{ 7 % -3 }} {{ 2 ** 3 }} {{ 2 ** -1 }} {{ 7.5 // 2 }} {{ -7.5 % 2 }}", {}),
    ("str_mul_neg", "[{{ 'ab' * 0 }}][{{ 'ab' * -1 }}][{{ 2 * 'x' }}]", {}),
    ("list_mul", "{{ ([1, 2] * 2)|join(',') }}", {}),
    ("percent_format", "{{ '%s=%d' % ('a', 3) }} {{ '%05.1f' % 3.14159 }} {{ '%-4s|' % 'x' }} {{ '%(a)s!' % {'a': 1} }} {{ '%x' % 255 }} {{ '%s' % none }}", {}),
    ("bool_arith", "{{ true + 1 }} {{ false * 3 }}", {}),
    ("int_plus_str_err", "{{ 1 + 'a' }}", {}),
    ("eq_lists", "{{ [1, 2] == [1, 2] }} {{ {'a': 1} == {'a': 1} }} {{ 1 == true }}", {}),
    ("in_dict_keys", "{{ 'a' in d }} {{ 'b' in d.keys() }} {{ 1 in d.values() }}", {"d": {"a": 1}}),
    # item access
    ("getitem_oob", "[{{ l[5] }}][{{ l[-5] }}][{{ s[10] }}][{{ d['zz'] }}]", {"l": [1], "s": "ab", "d": {}}),
    ("getitem_unicode", "{{ s[0] }}{{ s[1] }}{{ s[-1] }}{{ s[-2] }}", {"s": "é😀ü"}),
    ("getitem_loop", "{% for x in l %}{{ loop['index'] }}{% endfor %}", {"l": [1, 2]}),
    ("getitem_nested", "{{ m['tool_calls'][0]['function']['name'] }} {{ m.tool_calls[0].function.arguments.unit }}", {"m": TC_MSG}),
    ("getattr_int_key", "{{ d[1] }}|{{ d['1'] }}", {"d": {"1": "s"}}),
    ("loop_depth", "{% for a in l %}{% for b in l %}{{ loop.depth }}{{ loop.depth0 }}{% endfor %}{% endfor %}", {"l": [1]}),
    ("loop_changed", "{% for x in l %}{% if loop.changed(x) %}{{ x }}{% endif %}{% endfor %}", {"l": [1, 1, 2, 2, 1]}),
    ("loop_over_dict_items_tojson", "{% for k, v in d.items() %}{{ k }}:{{ v|tojson }};{% endfor %}", {"d": {"b": [1], "a": {"x": None}}}),
    ("loop_unpack_items_filter", "{% for name, p in props|items %}{{ name }}={{ p.type }};{% endfor %}", {"props": TOOLS[0]["function"]["parameters"]["properties"]}),
    # more string methods
    ("str_methods_2", "{{ s.title() }}|{{ s.find('z') }}|{{ s.rfind('o') }}|{{ s.startswith('he', 0) }}|{{ s.count('') }}|{{ s.removeprefix('he') }}|{{ s.partition(' ')|join(',') }}", {"s": "hello world"}),
    ("str_strip_unicode", "[{{ s.strip() }}][{{ s|trim }}]", {"s": "\u00a0\u2003 x \u3000"}),
    ("str_rsplit_ws", "{{ s.rsplit(None, 1)|join('|') }}#{{ s.split(None, 1)|join('|') }}#{{ s.rsplit(',')|join('|') }}", {"s": " a b  c "}),
    ("str_replace_empty", "{{ 'abc'.replace('', '-') }} {{ 'aaa'.replace('a', 'b', 2) }}", {}),
    ("str_isspace_etc", "{{ ' '.isspace() }} {{ 'Ab'.istitle() }} {{ 'ab1'.isalnum() }} {{ 'x'.upper().lower() }}", {}),
    ("str_join_method", "{{ ', '.join(l) }}", {"l": ["a", "b"]}),
    ("str_splitlines_keepends", "{{ s.splitlines()|length }}", {"s": "a\n\nb\n"}),
    # whitespace details
    ("ws_lstrip_not_line_start", "{% for x in l %}{{ x }} {% endfor %}|{% for x in l %}{{ x }}\t{% if true %}!{% endif %}{% endfor %}", {"l": [1, 2]}),
    ("ws_lstrip_nested_indent", "<ul>\n  {% for x in l %}\n    <li>{{ x }}</li>\n  {% endfor %}\n</ul>", {"l": [1, 2]}),
    ("ws_lstrip_comment_line", "a\n    {# c #}\nb\n  {#+ c #}\nd", {}),
    ("ws_trim_after_output", "{{ 'x' }}\n{% if true %}\ny{% endif %}", {}),
    ("ws_minus_both", "a\n  {%- if true -%}\n  b\n  {%- endif -%}\n  c", {}),
    ("ws_plus_end", "{% if true +%}\nkeep{% endif %}", {}),
    ("ws_raw_lstrip", "  {% raw %}\n  {{ x }}\n  {% endraw %}\nz", {}),
    ("ws_macro_body", "{% macro m() %}\n  hi\n{% endmacro %}[{{ m() }}]", {}),
    ("ws_only_text", "  hello  \n  world  ", {}),
    ("ws_tab_before_block", "\t{% if true %}x{% endif %}", {}),
    # filters 2
    ("f_map_filters", "{{ l|map('upper')|join(',') }} {{ l|map('replace', 'a', 'o')|join(',') }}", {"l": ["ab", "ca"]}),
    ("f_selectattr_defined", "{{ msgs|selectattr('name', 'defined')|list|length }} {{ msgs|selectattr('name')|map(attribute='name')|join }}", {"msgs": [{"role": "a", "name": "n"}, {"role": "b"}]}),
    ("f_select_string", "{{ l|select('string')|list|length }}", {"l": ["a", 1, "b"]}),
    ("f_join_attribute", "{{ msgs|join(',', attribute='role') }}", {"msgs": MSGS}),
    ("f_length_of_filtered", "{{ (messages|selectattr('role', 'eq', 'assistant')|list)|length }}", {"messages": MSGS}),
    ("f_last_message", "{{ (messages|last).content }} {{ messages[-1]['role'] }}", {"messages": MSGS}),
    ("f_tojson_nested_list_indent", "{{ x|tojson(indent=2) }}", {"x": [[], {}, [1, [2]], "s"]}),
    ("f_tojson_unicode_keys", "{{ x|tojson }}", {"x": {"é": "ü", "k\"": 1}}),
    ("f_tojson_big_ints", "{{ x|tojson }}", {"x": [9007199254740993, -5, 0]}),
    ("f_string_nested", "{{ x|string }}", {"x": {"a": [1, {"b": None}], "c": True}}),
    ("f_int_base", "{{ '0x1A'|int(0, 16) }} {{ '12'|int }} {{ 3.9|int }} {{ true|int }}", {}),
    ("f_first_of_dict", "{{ d|first }} {{ d|list|join(',') }} {{ d|length }}", {"d": {"z": 1, "a": 2}}),
    ("f_sum_attr", "{{ l|sum(attribute='n') }} {{ [1.5, 2]|sum }}", {"l": [{"n": 1}, {"n": 2}]}),
    ("f_unique_case", "{{ l|unique|join(',') }}", {"l": ["a", "A", "b"]}),
    ("f_trim_chars", "[{{ '..a..'|trim('.') }}]", {}),
    ("f_capitalize_title", "{{ \"it's a dog's life\"|title }} {{ 'hELLO'|capitalize }}", {}),
    ("f_wordcount_unicode", "{{ 'héllo wörld, ça va'|wordcount }}", {}),
    ("f_length_none", "{{ x|length }}", {"x": None}),
    # misc
    ("print_list_of_dicts", "{{ l }}", {"l": [{"a": "x'y"}, None, 1.0, "é\n"]}),
    ("print_nested_ns", "{% set ns = namespace(l=[1, 'a']) %}{{ ns.l }}", {}),
    ("macro_kwargs_varargs", "{% macro m(a) %}{{ a }}{{ varargs|length }}{{ kwargs|length }}{% endmacro %}{{ m(1) }}", {}),
    ("undefined_in_ops", "[{{ nope ~ 'x' }}][{{ (nope or 'd') }}]", {}),
    ("none_is_none", "{{ none is none }} {{ x is not none }} {{ x is none }}", {"x": "v"}),
    ("deep_if_elif", "{% for m in messages %}{% if m.role == 'system' %}S{% elif m.role == 'user' %}U{% elif m.role == 'assistant' %}A{% else %}?{% endif %}{% endfor %}", {"messages": MSGS + [{"role": "tool", "content": "t"}]}),
    ("messages_length_check", "{% if messages|length % 2 == 0 %}even{% else %}odd{% endif %}", {"messages": MSGS}),
    ("strftime_glibc", "{{ strftime_now('%-d %B') }} {{ strftime_now('%e') }}", {}),
    ("content_list_text", "{% for m in messages %}{% if m.content is string %}{{ m.content }}{% else %}{% for c in m.content %}{% if c.type == 'text' %}{{ c.text }}{% elif c.type == 'image' %}<image>{% endif %}{% endfor %}{% endif %}{% endfor %}", {"messages": [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What?"}]}]}),

]


def main():
    out = []
    for name, src, variables in CASES:
        case = {"name": name, "template": src, "vars": variables}
        try:
            case["want"] = env.from_string(src).render(**variables)
        except Exception as e:  # noqa: BLE001 - record every failure kind
            case["error"] = "%s: %s" % (type(e).__name__, e)
        out.append(case)
    json.dump(out, sys.stdout, ensure_ascii=False, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
