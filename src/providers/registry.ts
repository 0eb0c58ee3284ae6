import type { z } from "zod";
import type { SchemaTools } from "../config/tools.js";
import type { ProviderModule } from "./provider.js";
import { fileSchema } from "./file/schema.js";
import { envSchema } from "./env/schema.js";
import { vaultSchema } from "./vault/schema.js";
import { awsSecretsManagerSchema } from "./aws-secrets-manager/schema.js";
import { awsSsmSchema } from "./aws-ssm/schema.js";
import { awsStsSchema } from "./aws-sts/schema.js";
import { gcpSecretManagerSchema } from "./gcp-secret-manager/schema.js";
import { azureKeyVaultSchema } from "./azure-key-vault/schema.js";

export interface ProviderType {
  /** Validates the provider's config block; small, so the config can be checked without loading backends. */
  readonly schema: (t: SchemaTools) => z.ZodTypeAny;
  /** Loads the implementation lazily, in its own chunk: a gateway pays only for the backends it uses. */
  readonly load: () => Promise<ProviderModule<unknown>>;
}

// Adding a backend is adding a folder and one line here.
export const providerTypes: Record<string, ProviderType> = {
  file: { schema: fileSchema, load: () => import("./file/provider.js") },
  env: { schema: envSchema, load: () => import("./env/provider.js") },
  vault: { schema: vaultSchema, load: () => import("./vault/provider.js") },
  "aws-secrets-manager": { schema: awsSecretsManagerSchema, load: () => import("./aws-secrets-manager/provider.js") },
  "aws-ssm": { schema: awsSsmSchema, load: () => import("./aws-ssm/provider.js") },
  "aws-sts": { schema: awsStsSchema, load: () => import("./aws-sts/provider.js") },
  "gcp-secret-manager": { schema: gcpSecretManagerSchema, load: () => import("./gcp-secret-manager/provider.js") },
  "azure-key-vault": { schema: azureKeyVaultSchema, load: () => import("./azure-key-vault/provider.js") },
};
