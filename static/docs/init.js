// The hub's API reference: its OpenAPI document, with "Authorize" taking the admin token or an
// API token (kept in this browser until it signs out of the page).
window.ui = SwaggerUIBundle({
  url: "/api/v1/openapi.json",
  dom_id: "#docs",
  deepLinking: true,
  persistAuthorization: true,
  tryItOutEnabled: false,
});
