"""The ``textual-inversion`` generator: one learned token per concept for Stable Diffusion 1.x.

Each concept gets a placeholder token ``<concept-slug>`` (plus ``<concept-slug>_1`` … for
``num_vectors > 1``) whose embedding rows start from an initializer word and are the only
weights trained; UNet, VAE and the rest of the text encoder stay frozen. The result is a
``learned_embeds.safetensors`` in the diffusers format, loadable with
``pipe.load_textual_inversion(path)``; with ``export_format=a1111`` also ``<concept>.safetensors``
(``emb_params``) and ``<concept>.pt`` (``string_to_param``, ``name``, ``step``) that
AUTOMATIC1111 and ComfyUI load from their ``embeddings`` folder. Training and generation come
from :mod:`synthaug.diffusion`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from synthaug import Concept, InvalidOptionsError, hookimpl
from synthaug.diffusion import DiffusionGeneratorBase, DiffusionOptions

__all__ = ["EMBEDS_FILE", "TextualInversionGenerator", "TextualInversionOptions", "register_generators"]
__version__ = "0.1.0"

#: The file the learned embedding is saved to (the diffusers default name).
EMBEDS_FILE = "learned_embeds.safetensors"


class TextualInversionOptions(DiffusionOptions):
    """Options of ``textual-inversion`` (plus every shared diffusion option)."""

    initializer_token: str = Field(
        "lesion", min_length=1,
        description="Word whose embedding starts the placeholder vectors (averaged if it is several tokens).",
    )
    num_vectors: int = Field(1, ge=1, le=16, description="Embedding vectors per placeholder token.")
    learning_rate: float = Field(5e-4, gt=0, description="Peak learning rate.")
    max_train_steps: int = Field(3000, ge=1, description="Optimizer steps per concept.")
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay on the learned vectors.")
    export_format: Literal["diffusers", "a1111"] = Field(
        "diffusers",
        description="diffusers: learned_embeds.safetensors (pipe.load_textual_inversion); a1111: also "
                    "<concept>.safetensors (emb_params) and <concept>.pt (string_to_param, name, step) for the "
                    "embeddings folder of AUTOMATIC1111 and ComfyUI.",
    )


def _replace_rows(token_ids: Any, vectors: Any, module: Any, inputs: tuple[Any, ...], output: Any) -> Any:
    """Forward hook of the token embedding: rows of ``token_ids`` come from ``vectors``."""
    import torch

    input_ids = inputs[0]
    match = (input_ids.unsqueeze(-1) == token_ids.to(input_ids.device)).to(output.dtype)  # (B, L, n)
    learned = match @ vectors.to(device=output.device, dtype=output.dtype)  # (B, L, dim)
    keep = 1 - match.sum(-1, keepdim=True)
    return output * keep + learned if torch.is_tensor(output) else output


class TextualInversionGenerator(DiffusionGeneratorBase):
    """Learn a placeholder token per concept (SD1.x); generate the concept from prompts using it."""

    name = "textual-inversion"
    version = "1"
    description = "Stable Diffusion 1.x textual inversion: one learned token embedding per class."
    Options = TextualInversionOptions

    def __init__(self, options=None, /, **overrides) -> None:
        super().__init__(options, **overrides)
        self._hook: Any = None
        self._vectors: Any = None
        self._token_ids: Any = None

    def check_options(self) -> None:
        super().check_options()
        o = self.options
        for where, template in [("prompt_template", o.prompt_template), *(
                (f"prompts[{k!r}]", v) for k, v in o.prompts.items())]:
            if "{concept}" not in template:
                raise InvalidOptionsError(
                    f"generator 'textual-inversion': option {where}={template!r} has no {{concept}}; the learned "
                    "token is inserted there, e.g. 'a dermoscopic image of {concept}'"
                )

    # -- tokens ----------------------------------------------------------------------------
    def placeholder(self, concept: Concept) -> str:
        """The concept's placeholder token, e.g. ``<melanoma>``."""
        return f"<{concept.slug.lower()}>"

    def placeholder_tokens(self, concept: Concept) -> list[str]:
        """All tokens of the placeholder: ``<x>``, ``<x>_1``, … (diffusers' multi-vector naming)."""
        first = self.placeholder(concept)
        return [first] + [f"{first}_{i}" for i in range(1, self.options.num_vectors)]

    def concept_phrase(self, concept: Concept) -> str:
        return self.placeholder(concept)

    def _initial_vector(self, pipe: Any) -> Any:
        ids = pipe.tokenizer.encode(self.options.initializer_token, add_special_tokens=False)
        if not ids:
            raise InvalidOptionsError(
                f"generator 'textual-inversion': option initializer_token={self.options.initializer_token!r} "
                "gives no tokens; use a word such as 'lesion' or 'skin'"
            )
        weight = pipe.text_encoder.get_input_embeddings().weight
        return weight[ids].detach().float().mean(0)

    # -- training hooks ------------------------------------------------------------------------
    def add_trainable(self, pipe: Any, concept: Concept) -> dict[str, Any]:
        import torch

        tokens = self.placeholder_tokens(concept)
        tokenizer, encoder = pipe.tokenizer, pipe.text_encoder
        if tokenizer.add_tokens([t for t in tokens if t not in tokenizer.get_vocab()]):
            encoder.resize_token_embeddings(len(tokenizer), mean_resizing=False)
        self._token_ids = torch.tensor(tokenizer.convert_tokens_to_ids(tokens))
        self._vectors = torch.nn.Parameter(self._initial_vector(pipe).repeat(len(tokens), 1))
        self._hook = encoder.get_input_embeddings().register_forward_hook(
            lambda module, inputs, output: _replace_rows(self._token_ids, self._vectors, module, inputs, output)
        )
        return {"text_encoder.placeholder_vectors": self._vectors}

    def trainable_modules(self, pipe: Any) -> list[Any]:
        return [pipe.text_encoder, pipe.unet]

    def conditions_need_grad(self) -> bool:
        return True

    def save_adapter(self, pipe: Any, concept: Concept, folder: Path) -> list[Path]:
        from safetensors.torch import save_file

        path = folder / EMBEDS_FILE
        save_file({self.placeholder(concept): self._vectors.detach().float().cpu().contiguous()}, str(path))
        if self.options.export_format != "a1111":
            return [path]
        from synthaug.diffusion import save_a1111_embedding

        return [path, *save_a1111_embedding(folder, concept.slug, self._vectors, step=self.options.max_train_steps,
                                            checkpoint_name=Path(self.options.base_model).name)]

    def finish_training(self, pipe: Any, concept: Concept) -> None:
        """Write the learned vectors into the embedding rows and remove the training hook."""
        import torch

        if self._hook is not None:
            self._hook.remove()
            with torch.no_grad():
                weight = pipe.text_encoder.get_input_embeddings().weight
                weight[self._token_ids.to(weight.device)] = self._vectors.to(weight.device, weight.dtype)
        self._hook = self._vectors = self._token_ids = None

    def activate_adapter(self, pipe: Any, concept: Concept, folder: Path) -> None:
        """Load the concept's embedding: stock ``load_textual_inversion``, or refresh rows already there."""
        import torch
        from safetensors.torch import load_file

        path = folder / EMBEDS_FILE
        tokens = self.placeholder_tokens(concept)
        if tokens[0] not in pipe.tokenizer.get_vocab():
            pipe.load_textual_inversion(str(path))
            return
        vectors = load_file(str(path))[tokens[0]]
        with torch.no_grad():
            weight = pipe.text_encoder.get_input_embeddings().weight
            ids = torch.tensor(pipe.tokenizer.convert_tokens_to_ids(tokens), device=weight.device)
            weight[ids] = vectors.to(weight.device, weight.dtype)


@hookimpl
def register_generators(register) -> None:
    register(TextualInversionGenerator)
