import type { z } from "zod";
import type { SchemaTools } from "../config/tools.js";
import type { ProviderModule } from "./provider.js";
import { fileSchema } from "./file/schema.js";
import { envSchema } from "./env/schema.js";
import { vaultSchema } from "./vault/schema.js";
import { awsSecretsManagerSchema, awsSsmSchema, awsStsSchema } from "./aws/schema.js";
import { gcpSecretManagerSchema } from "./gcp-secret-manager/schema.js";
import { azureKeyVaultSchema } from "./azure-key-vault/schema.js";

export interface ProviderType {
  /** Validates the provider's config block; small, so the config can be checked without loading backends. */
  readonly schema: (t: SchemaTools) => z.ZodTypeAny;
  /** Loads the implementation lazily; absent while the backend is not active in this build. */
  readonly load?: () => Promise<ProviderModule<any>>;
}

// Adding a backend is adding a folder and one line here.
export const providerTypes: Record<string, ProviderType> = {
  file: { schema: fileSchema, load: () => import("./file/provider.js") },
  env: { schema: envSchema, load: () => import("./env/provider.js") },
  vault: { schema: vaultSchema },
  "aws-secrets-manager": { schema: awsSecretsManagerSchema },
  "aws-ssm": { schema: awsSsmSchema },
  "aws-sts": { schema: awsStsSchema },
  "gcp-secret-manager": { schema: gcpSecretManagerSchema },
  "azure-key-vault": { schema: azureKeyVaultSchema },
};

export function isActiveType(type: string): boolean {
  return providerTypes[type]?.load !== undefined;
}
