"""The Go template subset the double renders for task templates."""

from __future__ import annotations

import pytest

from support.nomad_double.gotemplate import Context, MissingData, TemplateError, render

VARIABLES = {"nomad/jobs/batch": {"password": "s3cret", "user": "batch-processor"}}


def context(*, strict: bool = False) -> Context:
    return Context(read_variable=VARIABLES.get, env={"NOMAD_JOB_ID": "batch"}, error_on_missing_key=strict)


def test_with_nomad_var_renders_item():
    text = '{{ with nomadVar "nomad/jobs/batch" }}{{ .password }}{{ end }}'

    assert render(text, context()) == "s3cret"


def test_trim_markers_remove_whitespace():
    text = '  \n{{- with nomadVar "nomad/jobs/batch" -}}\n  {{ .user }}\n{{- end -}}\n\n'

    assert render(text, context()) == "batch-processor"


def test_parent_fields_and_env():
    text = (
        '{{ with nomadVar "nomad/jobs/batch" }}{{ .Parent.Items.user }}@{{ .Parent.Path }}'
        '{{ end }}-{{ env "NOMAD_JOB_ID" }}'
    )

    assert render(text, context()) == "batch-processor@nomad/jobs/batch-batch"


def test_comment_and_else_branch():
    text = (
        '{{/* note */}}{{ with nomadVar "nomad/jobs/batch" }}{{ if .nope }}yes{{ else }}no{{ end }}{{ end }}'
    )

    assert render(text, context()) == "no"


def test_missing_key_prints_no_value():
    text = '{{ with nomadVar "nomad/jobs/batch" }}{{ .nope }}{{ end }}'

    assert render(text, context()) == "<no value>"


def test_missing_key_strict_raises():
    text = '{{ with nomadVar "nomad/jobs/batch" }}{{ .nope }}{{ end }}'

    with pytest.raises(TemplateError, match='no entry for key "nope"'):
        render(text, context(strict=True))


def test_missing_variable_raises_missing_data():
    with pytest.raises(MissingData) as caught:
        render('{{ with nomadVar "nomad/jobs/other" }}{{ end }}', context())

    assert caught.value.dependency == "nomad.var.block(nomad/jobs/other@default.global)"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{{ secret "kv/data/x" }}', 'function "secret" not defined'),
        ("{{ .a | toUpper }}", "pipelines with | are not supported"),
        ("{{ range . }}{{ end }}", 'action "range" is not supported'),
        ('{{ with nomadVar "nomad/jobs/batch" }}', "unexpected EOF"),
        ("{{ end }}", "unexpected {{end}}"),
        ("{{ .a ", "unclosed action"),
    ],
)
def test_unsupported_templates_raise(text, message):
    with pytest.raises(TemplateError, match=message.replace("|", r"\|").replace("{", r"\{")):
        render(text, context())


def test_custom_delimiters():
    text = '[[ with nomadVar "nomad/jobs/batch" ]][[ .password ]][[ end ]]{{ not a template }}'

    assert render(text, context(), "[[", "]]") == "s3cret{{ not a template }}"
