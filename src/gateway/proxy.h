/*
 * proxy.h — the OpenAI-compatible client API: /v1/chat/completions,
 * /v1/embeddings, /v1/models.
 *
 * A request is authenticated with a Fusion client key, routed to the
 * providers serving its model (route.h), sent upstream through the
 * worker's curl multi (upstream/client.h), and answered — streamed event
 * by event for stream:true — with failover to the next candidate while
 * nothing has reached the client yet.  Each request ends in one
 * request_logs row handed to the log writer.
 */
#ifndef FUSION_GATEWAY_PROXY_H
#define FUSION_GATEWAY_PROXY_H

struct http_req;

void proxy_chat_completions(struct http_req *r);
void proxy_embeddings(struct http_req *r);
void proxy_messages(struct http_req *r);     /* POST /v1/messages (Anthropic) */
void proxy_count_tokens(struct http_req *r); /* POST /v1/messages/count_tokens: 501 */
void proxy_gemini(struct http_req *r);       /* POST /v1beta/models/{model}:(stream)GenerateContent */
void proxy_models(struct http_req *r);       /* GET /v1/models and /v1/models/{id} */

#endif
