"""Finding the passages a question needs: loaders, chunks with exact spans, embeddings, and a
vector store whose every search is filtered by the caller's access rights."""

from retrieval._chunking import Span, chunk_text
from retrieval._edge import EdgeStore
from retrieval._embed import Embedder, SentenceTransformerEmbedder, default_model_path
from retrieval._errors import EmbeddingError, LoaderError, RetrievalError, StoreError
from retrieval._indexer import Indexer, IndexReport, Retriever, plan_chunks
from retrieval._loaders import Document, LoadResult, load_documents
from retrieval._qdrant import QdrantStore
from retrieval._store import EmbeddedChunk, VectorStore, point_id
from retrieval._types import Chunk, Principal, SearchHit, document_acl

__all__ = [
    "Chunk",
    "Document",
    "EdgeStore",
    "EmbeddedChunk",
    "Embedder",
    "EmbeddingError",
    "IndexReport",
    "Indexer",
    "LoadResult",
    "LoaderError",
    "Principal",
    "QdrantStore",
    "RetrievalError",
    "Retriever",
    "SearchHit",
    "SentenceTransformerEmbedder",
    "Span",
    "StoreError",
    "VectorStore",
    "chunk_text",
    "default_model_path",
    "document_acl",
    "load_documents",
    "plan_chunks",
    "point_id",
]
