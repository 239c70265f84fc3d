/*
 * service_routes.h (private to the gateway module): the NESO routes other
 * than IEC 104 as the service runs them: the MQTT publisher and the Wider
 * Access client (each on its own worker thread, fed by the service thread
 * through an in-memory queue, so a slow broker or endpoint never stalls
 * the outstation), and the Wider Access endpoint (libmicrohttpd's thread)
 * publishing what it receives on the bus.
 *
 *   gateway__routes_new(cfg, bus, proforma, clock, &r)     starts what cfg enables
 *   gateway__routes_values / _redeclarations               service thread
 *   gateway__routes_status(r, routes_object)               any time
 *   gateway__routes_destroy(&r)                            joins the workers
 */
#ifndef GATEWAY_SERVICE_ROUTES_H
#define GATEWAY_SERVICE_ROUTES_H

#include <jansson.h>

#include "engine/bus.h"
#include "gateway/gateway.h"

typedef struct gateway__routes gateway__routes;

/* cfg, bus, proforma and clock borrowed (outlive the routes). ANM_ECONFIG etc. with detail. */
int gateway__routes_new(const gateway_config *cfg, anm_bus *bus, const gateway_proforma *proforma,
                        anm_clock *clock, gateway__routes **out, anm_error_detail *detail);
void gateway__routes_destroy(gateway__routes **r);

/* Values leaving the service (points with an mqtt_topic go to MQTT). */
void gateway__routes_values(gateway__routes *r, const gateway_export_value *values, size_t n);
/* Redeclarations (sent to NESO as signed Wider Access messages). */
void gateway__routes_redeclarations(gateway__routes *r, const gateway_redeclaration *events,
                                    size_t n);
/* Adds "mqtt", "wider_access_client", "wider_access_server" to routes as enabled. */
void gateway__routes_status(gateway__routes *r, json_t *routes);
/* The Wider Access endpoint's port (0 if not running). */
int gateway__routes_wa_port(const gateway__routes *r);
/* The bus endpoint the endpoint publishes on ("" if none). */
const char *gateway__routes_wa_publish_endpoint(const gateway__routes *r);

#endif
