"""A model's chat template rendered as transformers renders it (sandboxed Jinja, trim/lstrip blocks, loop controls,
``raise_exception`` and ``strftime_now``, and transformers' ``{% generation %}`` training markers), for backends that
render prompts without transformers (llama.cpp)."""

from __future__ import annotations


class ChatTemplate:
    """A chat template rendered as transformers renders it (sandboxed, trim/lstrip blocks, loop controls)."""

    def __init__(self, source: str, bos: str, eos: str) -> None:
        import jinja2
        import jinja2.ext
        from jinja2.sandbox import ImmutableSandboxedEnvironment

        def raise_exception(message):
            raise jinja2.TemplateError(message)

        def strftime_now(fmt):
            import datetime

            return datetime.datetime.now().strftime(fmt)

        env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                            extensions=[jinja2.ext.loopcontrols, generation_tag()])
        env.globals.update(raise_exception=raise_exception, strftime_now=strftime_now)
        self.template = env.from_string(source)
        self.bos, self.eos = bos, eos

    def render(self, chat: list[dict]) -> str:
        return self.template.render(messages=chat, add_generation_prompt=True, bos_token=self.bos,
                                    eos_token=self.eos)


def generation_tag():
    import jinja2.ext
    from jinja2 import nodes

    class GenerationTag(jinja2.ext.Extension):
        """``{% generation %}...{% endgeneration %}`` (transformers' training markers) renders its body."""

        tags = {"generation"}

        def parse(self, parser):
            lineno = next(parser.stream).lineno
            body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
            return nodes.Scope(body, lineno=lineno)

    return GenerationTag
