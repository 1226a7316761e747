"""Finding the passages a question needs: loaders, chunks with exact spans, dense and BM25 vectors,
and a vector store whose every search is filtered by the caller's access rights inside the query."""

import importlib
from typing import TYPE_CHECKING

from retrieval._bm25 import SparseVector, document_vector, query_vector, tokenize
from retrieval._check import IndexCheck, check_index
from retrieval._chunking import Section, Span, chunk_text, markdown_sections
from retrieval._context import indexed_text
from retrieval._embed import (
    Embedder,
    FolderEmbedder,
    Precision,
    SentenceTransformerEmbedder,
    SharesTokenCounter,
    default_model_path,
    resolve_device,
)
from retrieval._errors import EmbeddingError, LoaderError, QueryError, RetrievalError, StoreError
from retrieval._indexer import DEFAULT_CHUNK_TOKENS, Indexer, IndexEvent, IndexReport, plan_chunks
from retrieval._loaders import SUPPORTED_SUFFIXES, Document, LoadResult, load_documents
from retrieval._manifest import Manifest, ManifestEntry
from retrieval._onnx import OnnxEmbedder, onnx_unsupported
from retrieval._profile import DEFAULT_PROFILE, MeasuredChoice, SearchProfile, load_profile, save_profile
from retrieval._retriever import Reranker, Retriever
from retrieval._store import EmbeddedChunk, StoreQuery, VectorStore, point_id
from retrieval._types import (
    Chunk,
    DocumentHit,
    Fusion,
    Principal,
    SearchFilters,
    SearchHit,
    SearchMode,
    document_acl,
)

if TYPE_CHECKING:
    from retrieval._edge import EdgeStore
    from retrieval._qdrant import QdrantStore

# The store engines load on first use, so `import retrieval` works (and stays quick) where one of
# them is not installed, e.g. a GPU box that only embeds.
_LAZY = {"EdgeStore": "retrieval._edge", "QdrantStore": "retrieval._qdrant"}


def __getattr__(name: str) -> object:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'retrieval' has no attribute {name!r}")


__all__ = [
    "DEFAULT_CHUNK_TOKENS",
    "DEFAULT_PROFILE",
    "SUPPORTED_SUFFIXES",
    "Chunk",
    "Document",
    "DocumentHit",
    "EdgeStore",
    "EmbeddedChunk",
    "Embedder",
    "EmbeddingError",
    "FolderEmbedder",
    "Fusion",
    "IndexCheck",
    "IndexEvent",
    "IndexReport",
    "Indexer",
    "LoadResult",
    "LoaderError",
    "Manifest",
    "ManifestEntry",
    "MeasuredChoice",
    "OnnxEmbedder",
    "Precision",
    "Principal",
    "QdrantStore",
    "QueryError",
    "Reranker",
    "RetrievalError",
    "Retriever",
    "SearchFilters",
    "SearchHit",
    "SearchMode",
    "SearchProfile",
    "Section",
    "SentenceTransformerEmbedder",
    "SharesTokenCounter",
    "Span",
    "SparseVector",
    "StoreError",
    "StoreQuery",
    "VectorStore",
    "check_index",
    "chunk_text",
    "default_model_path",
    "document_acl",
    "document_vector",
    "indexed_text",
    "load_documents",
    "load_profile",
    "markdown_sections",
    "onnx_unsupported",
    "plan_chunks",
    "point_id",
    "query_vector",
    "resolve_device",
    "save_profile",
    "tokenize",
]
